"""The worldflux version (a leaf module: core and the CLI read it without importing the package's
public API)."""

__version__ = "0.1.0"
