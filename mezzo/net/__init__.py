"""HTTP helpers shared by the servers and clients: streaming RecordIO, redirects, timeouts."""
