"""numacert: NUMA alignment conformance for Kubernetes nodes."""

__version__ = "0.1.0"
