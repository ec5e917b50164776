"""worldflux.training."""
