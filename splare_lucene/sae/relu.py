"""Standard (ReLU) SAE: relu(pre)."""

import torch

from .base import SparseAutoencoder


class ReLUSAE(SparseAutoencoder):
    architecture = "relu"
    monotone_activation = True  # relu is non-decreasing and relu(0) = 0

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)
