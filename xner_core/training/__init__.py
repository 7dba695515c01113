"""Stage 3b, fine-tuning: native, transfer, multi-source, distillation, TAPT, robust training."""
