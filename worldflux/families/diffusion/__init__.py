"""diffusion family (work in progress)."""
