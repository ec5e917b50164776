"""DreamerV3 (REFERENCE): slot implementations, objective and weight map."""
