"""The pytest-benchmark suite (`pytest --benchmark-only`, `make bench`): every tier timed on
checked results; plugin.py holds its options, run.py saves a run atomically."""
