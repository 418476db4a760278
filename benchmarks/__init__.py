"""Benchmarks of the DCS watchers against the local sandbox: `python -m benchmarks`.

Not part of the test suite; see `benchmarks/README.md`.
"""
