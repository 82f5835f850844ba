"""numacert.clusters (shipped in the wheel; see design.md)."""
