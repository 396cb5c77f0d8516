"""Thin command-line layer: parse, validate, make one library call. No torch/JVM at import."""
