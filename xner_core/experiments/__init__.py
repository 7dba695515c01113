"""Stage 6, experiments: grid specs and presets, plans, resumable runs (local or Ray) and the results store."""
