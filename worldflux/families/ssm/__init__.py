"""ssm family (work in progress)."""
