"""Text embeddings for similarity selection: embedders, the on-disk cache and the FAISS index."""
