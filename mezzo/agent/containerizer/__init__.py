"""The containerizer: a launcher plus an ordered list of isolators."""
