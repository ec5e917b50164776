"""gan family (work in progress)."""
