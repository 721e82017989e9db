"""The training job's entry point, run in its own process (see __main__.py)."""
