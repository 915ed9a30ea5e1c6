"""Orderers: the interface and the built-in as-selected, reverse and random orders."""
