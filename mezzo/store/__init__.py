"""Durable versioned key/value stores for the registry: memory, sqlite, zookeeper."""
