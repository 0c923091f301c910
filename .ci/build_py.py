"""The wheel's module list: only the package's own modules, never a stray file in the checkout.

The package `adder` is the repository root (`package-dir = {"adder" = "."}`), so setuptools'
`build_py` would install every `*.py` lying there: a user's `submission.py` or `my_adder.py`
exported into the checkout would become `adder.submission`. The root holds exactly two modules
of the package; everything else lives in the listed subpackages. pyproject.toml names this
class as `build_py` (`[tool.setuptools.cmdclass]`); it runs at build time only.

An editable install (`pip install -e .`) maps the checkout itself, so there every file imports;
`pip install .` and wheels get only what is listed here.
"""

from setuptools.command.build_py import build_py

#: The modules of the package that live at the repository root.
ROOT_MODULES = ("__init__", "__main__")


class BuildPy(build_py):
    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        if package != "adder":
            return modules
        return [(pkg, name, path) for pkg, name, path in modules if name in ROOT_MODULES]
