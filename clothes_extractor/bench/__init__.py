"""Benchmarks: latency and throughput of served models, side by side with PyTorch.

``runner`` times onnxruntime sessions (and the end-to-end ``extract`` pipeline) without
PyTorch; ``baseline`` times the same network in PyTorch when it is installed;
``compare`` merges result files from different machines into one table and plot.
"""
