"""Pair features beside the pipeline: entity/vocabulary overlap, URIEL distances, word embeddings."""
