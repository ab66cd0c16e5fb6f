"""Executor SDK and the built-in command executor."""
