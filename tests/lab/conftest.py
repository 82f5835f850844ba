"""The lab tests' fixtures (lab, lab_api, lab_namespace, guest_topology, kubelet_policy,
lab_image) live in numacert.fixtures.lab and are registered by numacert's pytest plugin."""
