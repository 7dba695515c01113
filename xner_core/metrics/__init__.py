"""Stage 5a, metrics: seqeval-strict entity scores, bootstrap CIs and paired drops, error breakdowns."""
