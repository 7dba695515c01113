"""Stage 5, evaluation: seqeval metrics with bootstrap CIs, and the evaluation of a model config."""
