"""Stage 6, experiments: the config (hash = cache key = result id), grid specs and runs, the store."""
