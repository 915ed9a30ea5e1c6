"""Adapters that let other frameworks use iclkit components (optional extras)."""
