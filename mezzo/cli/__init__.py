"""The `mezzo` command line: one entry point with sub-commands."""
