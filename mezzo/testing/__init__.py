"""Test helpers: fake clock, in-process cluster, subprocess helpers."""
