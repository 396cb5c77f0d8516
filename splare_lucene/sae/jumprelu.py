"""JumpReLU SAE (Gemma Scope, Llama Scope, SAELens jumprelu): pre * (pre > threshold), >= 0."""

import torch

from ..errors import CheckpointError
from .base import SparseAutoencoder


class JumpReLUSAE(SparseAutoencoder):
    architecture = "jumprelu"

    def __init__(self, config, W_enc, b_enc, b_dec=None, W_dec=None, threshold=None):
        if threshold is None:
            raise CheckpointError("a jumprelu SAE needs a `threshold` tensor of shape (d_sae,)")
        super().__init__(config, W_enc, b_enc, b_dec, W_dec, threshold)

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre) * (pre > self.threshold)
