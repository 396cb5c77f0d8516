"""JumpReLU SAE (Gemma Scope, Llama Scope, SAELens jumprelu): pre * (pre > threshold), >= 0."""

import torch

from ..errors import CheckpointError
from .base import SparseAutoencoder


class JumpReLUSAE(SparseAutoencoder):
    architecture = "jumprelu"
    # act(p) = relu(p) * [p > thr] is non-decreasing in p for every threshold, negative ones
    # included, so pooling may take the max over tokens before it (SparseAutoencoder.pool):
    # - thr >= 0: act(p) = 0 for p <= thr and act(p) = p > thr >= 0 above it; both pieces are
    #   non-decreasing and the jump at thr goes up (0 -> p > 0).
    # - thr < 0: for p <= thr < 0, relu(p) = 0 anyway, so act(p) = relu(p) everywhere.
    # - thr NaN: [p > NaN] is always false, act = 0, constant.
    # And act(0) = relu(0) * [0 > thr] = 0 in every case. Its derivative,
    # [p > 0] * [p > thr], is the same whether taken per token or on the max.
    monotone_activation = True

    def __init__(self, config, W_enc, b_enc, b_dec=None, W_dec=None, threshold=None):
        if threshold is None:
            raise CheckpointError("a jumprelu SAE needs a `threshold` tensor of shape (d_sae,)")
        super().__init__(config, W_enc, b_enc, b_dec, W_dec, threshold)

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre) * (pre > self.threshold)
