"""kind clusters as a numacert provider: generated configs, an offline node image, cluster
lifecycle."""
