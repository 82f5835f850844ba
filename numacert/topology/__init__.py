"""Node topology: the model, and the ways to build one (sysfs snapshot, generator, profiles)."""

from numacert.topology.model import CPU, NUMANode, Topology, make_cpus

__all__ = ["CPU", "NUMANode", "Topology", "make_cpus"]
