"""Facts about the running Linux kernel, read from the kernel itself."""
