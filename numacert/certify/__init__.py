"""Certification of a node: the pod plan, its execution and the comparison with the oracle."""
