"""numacert.suites.node: the node checks of the catalogue."""
