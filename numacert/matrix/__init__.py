"""Policy matrices: which kubelet policy combinations to certify, as data.

spec      read and check a matrix file (clusters/matrix/*.yaml or a user's file)
resolve   each combination on one node: its full kubelet configuration, and whether the kubelet
          would refuse it (invalid) or the node's hardware cannot exercise it (unsupported)
schedule  spread the runnable combinations over the nodes under test, one per node at a time

Pure logic: the only I/O is reading the matrix file.
"""

from numacert.matrix.resolve import Resolved, Status, raise_if_invalid, resolve
from numacert.matrix.schedule import Assignment, schedule
from numacert.matrix.spec import Combination, Matrix, load_matrix, shipped_matrices

__all__ = [
    "Assignment",
    "Combination",
    "Matrix",
    "Resolved",
    "Status",
    "load_matrix",
    "raise_if_invalid",
    "resolve",
    "schedule",
    "shipped_matrices",
]
