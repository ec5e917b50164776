"""renderer3d family (work in progress)."""
