"""The parser's ``alone`` head (``train --alone-head``; its training: ``train.alone``): whether a
photo shows its garment alone or worn, from the parser's deepest features."""

from __future__ import annotations

import torch
from torch import nn


class AloneHead(nn.Module):
    """Whether a photo shows its garment alone (a catalog image, a flat lay, a ghost mannequin)
    rather than worn: one logit per image, read from a parser's two deepest down-sampling
    levels (each channel's mean and maximum over the image) and its mean class probabilities,
    standardised (``shift``, ``scale``: set from the training features) into a small MLP.
    Trained on the parser's frozen features (``train.alone``), so the parse stays the parser's."""

    def __init__(self, deep: int, deeper: int, classes: int, hidden: int = 64):
        super().__init__()
        features = 2 * (deep + deeper) + classes
        self.register_buffer("shift", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1))

    @staticmethod
    def pooled(deep: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        """[N, 2 x (deep + deeper channels)]: each level's channels' means, then their maxima."""
        levels = (deeper.float(), deep.float())
        return torch.cat([level.mean((2, 3)) for level in levels] + [level.amax((2, 3)) for level in levels], 1)

    @staticmethod
    def features(pooled: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
        """[N, features]: ``pooled`` and the mean class probabilities (``shares``, [N, classes]),
        unstandardised (``classify`` standardises them)."""
        return torch.cat([pooled, shares.float()], 1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """[N] logits from ``features`` (as ``features`` gives them)."""
        return self.mlp((features - self.shift) * self.scale)[:, 0]
