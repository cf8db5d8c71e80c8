"""PyTorch side: networks and checkpoints (the training loop comes with the training issue)."""
