"""Model families: each subpackage registers its slot implementations and objective on import."""
