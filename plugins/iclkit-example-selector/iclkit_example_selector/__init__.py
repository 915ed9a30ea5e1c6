"""Template iclkit plugin: the ``length`` selector."""

from iclkit_example_selector.selector import LengthSelector

__all__ = ["LengthSelector"]
