"""Static assets of the master's web UI (served by `mezzo.master.webui`); no Python code."""
