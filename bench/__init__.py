"""The benchmark suite, the stand-alone studies and the report (see each subpackage)."""
