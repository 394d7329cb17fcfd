"""Facts that are not spans (runtime, network, scheduler), attributed to the spans they touched."""
