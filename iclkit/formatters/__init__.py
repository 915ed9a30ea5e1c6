"""Formatters: the interface, templates, and the built-in text and chat formatters."""
