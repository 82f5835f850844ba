"""Probes: plain data read from a node, its pods and its kubelet (no assertions here)."""
