"""Machine-written code (worldflux.codegen). DO NOT EDIT."""
