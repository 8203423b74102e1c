"""Benchmarks: each script measures a ratio in one run and records it in bench/RESULTS.md."""
