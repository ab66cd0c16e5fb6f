"""Example frameworks: batch with delay scheduling, iterative in-memory, MPI-style gang, service."""
