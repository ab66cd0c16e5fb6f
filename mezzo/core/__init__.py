"""Core utilities shared by every layer: clock, ids, errors, durations, backoff.

Nothing here imports any other mezzo package.
"""
