"""Benchmarks for orch: run them with ``python bench/run.py CASE`` (see README.md)."""
