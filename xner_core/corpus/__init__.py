"""Stage 1, data: language metadata, IOB2 tags, WikiANN readers and the re-split, CoNLL files, input checks."""
