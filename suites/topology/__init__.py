"""numacert.suites.topology: the topology checks of the catalogue."""
