"""worldflux.codegen."""
