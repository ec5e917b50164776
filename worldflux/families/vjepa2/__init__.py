"""vjepa2 family (work in progress)."""
