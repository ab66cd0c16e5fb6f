"""Isolators: posix rlimits, cgroups v1/v2, pid namespace."""
