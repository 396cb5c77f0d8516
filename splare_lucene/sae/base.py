"""Inference SAE: the frozen encoder half. One subclass per activation, registered in __init__."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from .config import SAEConfig


class SparseAutoencoder(nn.Module):
    """Holds W_enc (d_in, d_sae), b_enc (d_sae), b_dec (d_in) and optional W_dec (d_sae, d_in)."""

    architecture: str = ""

    def __init__(self, config: SAEConfig, W_enc: torch.Tensor, b_enc: torch.Tensor,
                 b_dec: torch.Tensor | None = None, W_dec: torch.Tensor | None = None,
                 threshold: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        d_in, d_sae = config.d_in, config.d_sae
        expect = {"W_enc": (W_enc, (d_in, d_sae)), "b_enc": (b_enc, (d_sae,))}
        if b_dec is not None:
            expect["b_dec"] = (b_dec, (d_in,))
        if W_dec is not None:
            expect["W_dec"] = (W_dec, (d_sae, d_in))
        if threshold is not None:
            expect["threshold"] = (threshold, (d_sae,))
        for name, (tensor, shape) in expect.items():
            if tuple(tensor.shape) != shape:
                raise CheckpointError(f"SAE tensor {name} has shape {tuple(tensor.shape)}; "
                                      f"expected {shape} for d_in={d_in}, d_sae={d_sae}")
        self.W_enc = nn.Parameter(W_enc, requires_grad=False)
        self.b_enc = nn.Parameter(b_enc, requires_grad=False)
        self.b_dec = nn.Parameter(b_dec if b_dec is not None else torch.zeros(d_in, dtype=W_enc.dtype),
                                  requires_grad=False)
        self.W_dec = nn.Parameter(W_dec, requires_grad=False) if W_dec is not None else None
        if threshold is not None:
            self.threshold = nn.Parameter(threshold, requires_grad=False)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_sae)."""
        x = x.to(self.W_enc.dtype)
        if self.config.input_scale != 1.0:
            x = x * self.config.input_scale
        if self.config.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) hidden states -> (..., d_sae) non-negative latent activations."""
        return self.activate(self.pre_activation(x))

    forward = encode

    def pool(self, h: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in), (B, T) -> (B, d_sae): max over pooled tokens of log(1 + ReLU(latents))."""
        from ..pooling import max_pool

        return max_pool(self.encode, h, pool_mask, self.config.d_sae)

    def tensors(self, include_decoder: bool = True) -> dict[str, torch.Tensor]:
        out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "b_dec": self.b_dec}
        if hasattr(self, "threshold"):
            out["threshold"] = self.threshold
        if include_decoder and self.W_dec is not None:
            out["W_dec"] = self.W_dec
        return {k: v.detach().contiguous() for k, v in out.items()}
