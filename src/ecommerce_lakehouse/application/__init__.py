"""Use cases and the pipeline definition."""
