"""Benchmarks of social-tui media against the tools it replaces: `python bench/run.py`."""
