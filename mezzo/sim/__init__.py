"""Simulator: the real allocator and master core on a virtual clock."""
