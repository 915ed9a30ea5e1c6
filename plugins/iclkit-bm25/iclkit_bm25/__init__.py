"""iclkit plugin: the lexical ``bm25`` demonstration selector."""

from iclkit_bm25.selector import BM25Selector

__all__ = ["BM25Selector"]
