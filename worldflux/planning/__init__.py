"""worldflux.planning."""
