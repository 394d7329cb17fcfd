"""From the kernel's records to exported spans: decode, link, sample, export, in a session."""
