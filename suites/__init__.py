"""numacert.suites (shipped in the wheel; see design.md)."""
