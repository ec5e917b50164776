"""physics family (work in progress)."""
