"""Benchmarks: rerunnable measurements of speed and quality (not tests)."""
