"""Demonstration selectors: the interface and the built-in random, first and balanced."""
