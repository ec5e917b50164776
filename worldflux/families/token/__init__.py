"""token family (work in progress)."""
