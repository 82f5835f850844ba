"""numacert.suites.cpu: the cpu checks of the catalogue."""
