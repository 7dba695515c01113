"""Stage 3a, model sources: hub ids, local directories, the packaged e5-small, tiny; the model cache."""
