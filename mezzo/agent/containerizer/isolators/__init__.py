"""Built-in isolators: posix (accounting, rlimits), cgroups v1/v2 (cpu, mem, pids), pid namespace.

Names and availability live in :mod:`mezzo.agent.containerizer.detect`.
"""
