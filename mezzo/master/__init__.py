"""The master: frameworks, agents, offers, tasks; the v1 scheduler API; the registry."""
