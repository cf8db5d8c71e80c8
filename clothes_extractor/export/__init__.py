"""PyTorch -> ONNX export of served models, and its numeric validation (needs torch + onnx)."""
