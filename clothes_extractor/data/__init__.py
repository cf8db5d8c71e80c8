"""Dataset tools without PyTorch: synthetic triplets and downsampled copies."""
