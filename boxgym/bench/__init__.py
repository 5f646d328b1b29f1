"""Benchmarks behind ``boxgym bench <name> --json``; one module per benchmark."""
