"""Standard (ReLU) SAE: relu(pre)."""

import torch

from .base import SparseAutoencoder


class ReLUSAE(SparseAutoencoder):
    architecture = "relu"

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)
