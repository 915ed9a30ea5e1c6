"""Model backends: the interface and the built-in backends."""
