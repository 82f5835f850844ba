"""Root pytest wiring. The numacert plugin (numacert/pytest_plugin.py) is registered through the
pytest11 entry point of the installed package; nothing else belongs here."""
