"""numacert.suites.hugepages: the hugepages checks of the catalogue."""
