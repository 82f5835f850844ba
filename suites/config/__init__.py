"""numacert.suites.config: the config checks of the catalogue."""
