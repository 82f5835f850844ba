"""numacert.suites.memory: the memory checks of the catalogue."""
