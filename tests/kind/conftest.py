"""The kind tests' fixtures (kind_bin, kind_node_image, no_kind_leftovers) live in
numacert.fixtures.kind and are registered by numacert's pytest plugin."""
