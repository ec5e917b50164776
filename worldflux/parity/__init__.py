"""worldflux.parity."""
