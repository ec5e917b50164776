"""worldflux.specs."""
