"""Generated model classes. DO NOT EDIT."""
