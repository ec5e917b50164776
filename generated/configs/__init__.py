"""Generated config classes. DO NOT EDIT."""
