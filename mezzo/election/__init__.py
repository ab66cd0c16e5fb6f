"""Leader election: contenders and detectors (standalone and ZooKeeper)."""
