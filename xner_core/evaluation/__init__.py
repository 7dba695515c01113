"""Stage 5b, evaluation: a model config evaluated on its target's clean and perturbed test sets, and the one
builder of evaluation inputs (seen corpus, test set, donor, perturbation context) every caller shares."""
