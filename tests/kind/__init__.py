"""Tests against real kind clusters (Docker, kind, numacert's offline node image)."""
