"""The worldflux conformance suite."""
