"""Circuit comparison (`adder compare`): do two models add the same way? Beside the verifier, not in it.

`circuits.py` measures both models on one seeded, carry-balanced probe set (attention routing
by position class, linear carry probes, margins, ledgers) and sums the differences up;
`plots.py` draws the numbers and writes the HTML report (matplotlib, only when asked for).
"""

from .circuits import (CLASSES, DECODABLE_ACC, NEAR, POSITION_ONLY_STD, TRAIN_SHARE, Comparison, Profile,
                       RoutingRow, carry_balanced_pairs, compare, digit_class_map, headlines, position_classes,
                       profile, routing_rows)

__all__ = ["CLASSES", "DECODABLE_ACC", "NEAR", "POSITION_ONLY_STD", "TRAIN_SHARE", "Comparison", "Profile",
           "RoutingRow", "carry_balanced_pairs", "compare", "digit_class_map", "headlines", "position_classes",
           "profile", "routing_rows"]
