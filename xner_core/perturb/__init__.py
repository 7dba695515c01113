"""Stage 2, perturbations: the registry of seeded, label-preserving perturbations and their context."""
