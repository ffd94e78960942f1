"""Export of the stage models and tokenizers to ONNX, the bundle writer and parity checks (needs torch)."""
