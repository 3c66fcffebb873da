"""Benchmarks and the synthetic-input generator used by them and by the tests."""
