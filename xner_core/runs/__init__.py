"""A run's identity and what is stored by it: the experiment config (hash = model-cache key = result id)
and the content-addressed model cache of fine-tuned models."""
