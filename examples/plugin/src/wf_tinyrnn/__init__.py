"""worldflux-tinyrnn: an example worldflux plugin (models + a slot implementation)."""
