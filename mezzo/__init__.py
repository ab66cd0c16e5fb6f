"""mezzo: fine-grained resource sharing in the data center, after Mesos (NSDI 2011).

Speaks the Mesos v1 HTTP APIs. See docs/architecture.md for the map of the code.
"""

__version__ = "1.11.0"
