"""Allocators: a pure library (no I/O, time passed in) deciding who is offered what."""
