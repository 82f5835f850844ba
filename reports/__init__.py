"""numacert.reports (shipped in the wheel; see design.md)."""
