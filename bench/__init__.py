"""Performance benchmarks, each printing ratios against a reference run in the same script; run
as ``python -m bench.NAME`` from the repository root."""
