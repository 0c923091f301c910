"""Running AdderBoard submission files: untrusted Python that defines `build_model()` and `add()`.

Not a compiler pass, so not in `compiler/`: `blackbox.py` runs a file in worker processes and
classes each call's outcome (answer, error, timeout, crash); `blackbox_worker.py` is the worker
(standard library only, loaded by path); `sandbox.py` confines a worker with what the OS offers.
"""
