"""dit family (work in progress)."""
