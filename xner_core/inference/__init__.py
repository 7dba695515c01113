"""Stage 4, prediction: batched, length-sorted inference to word-level IOB2 (PyTorch or ONNX int8)."""
