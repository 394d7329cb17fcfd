"""What the manifests name, found in one binary: its Layout."""
