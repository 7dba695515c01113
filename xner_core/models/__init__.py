"""Stage 3a, model sources: hub ids, local directories, tiny, and the packaged e5-small (rebuilt from its
bundled 4-bit file)."""
