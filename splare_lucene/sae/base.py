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

    #: True when ``activate`` is, per latent, a non-decreasing function of the pre-activation
    #: with ``activate(0) <= 0`` (after the per-token selection ``token_top_k`` for TopK). Each
    #: subclass that sets it proves it in a comment. Then ``pool`` takes the max over tokens on
    #: pre-activations (``pooling.affine_max_pool``: sparse backward); otherwise it falls back to
    #: the dense ``pool_dense``.
    monotone_activation: bool = False

    @property
    def token_top_k(self) -> int | None:
        """k when each token keeps only its k largest pre-activations (TopK), else None."""
        return None

    def activate_pooled(self, pooled_pre: torch.Tensor) -> torch.Tensor:
        """The activation applied to token-maxed pre-activations (B, d_sae), elementwise. The
        default is ``activate`` itself (ReLU, JumpReLU); TopK, whose selection is done per token
        before the max, overrides it with ReLU."""
        return self.activate(pooled_pre)

    def pool(self, h: torch.Tensor, pool_mask: torch.Tensor, max_elements: int = 1 << 24) -> torch.Tensor:
        """(B, T, d_in), (B, T) -> (B, d_sae): max over pooled tokens of log(1 + ReLU(latents)).

        Equal to ``pool_dense`` (today's ``max_pool`` over ``encode``) but, for a monotone
        activation, with a backward that keeps an int32 (B, d_sae) argmax instead of about three
        float32 (B, T, d_sae) tensors. Why the values are equal: g = saturate o act is
        non-decreasing, so g(max_t pre_t) >= g(pre_t) for every pooled t and equals g at the
        argmax: g(max_t pre_t) = max_t g(pre_t). With no pooled token both give 0 (the fused max
        is 0 there, and g(0) = 0 because act(0) <= 0). The gradient of either with respect to
        pre is g' at the argmax token, 0 elsewhere (ties: see ``pooling._MaskedMaxAffine``).
        ``max_elements`` bounds the pre-activations computed at a time; it is a runtime knob.
        """
        from ..pooling import affine_max_pool, saturate

        if not self.monotone_activation:
            return self.pool_dense(h, pool_mask, max_elements)
        config = self.config
        pooled_pre = affine_max_pool(  # (B, d_sae)
            h.to(self.W_enc.dtype), self.W_enc.t(), pool_mask, bias=self.b_enc,
            shift=self.b_dec if config.apply_b_dec_to_input else None, scale=config.input_scale,
            token_top_k=self.token_top_k, max_elements=max_elements)
        return saturate(self.activate_pooled(pooled_pre))

    def pool_dense(self, h: torch.Tensor, pool_mask: torch.Tensor, max_elements: int = 1 << 24) -> torch.Tensor:
        """``pool`` through the generic ``pooling.max_pool`` over ``encode``: same values, but in
        training autograd keeps each token chunk's intermediates, about three float32
        (B, T, d_sae) tensors. Kept for activations that are not monotone and for comparisons
        (tests, benchmarks/training_memory.py)."""
        from ..pooling import max_pool

        return max_pool(self.encode, h, pool_mask, self.config.d_sae, max_elements)

    def tensors(self, include_decoder: bool = True) -> dict[str, torch.Tensor]:
        out = {"W_enc": self.W_enc, "b_enc": self.b_enc, "b_dec": self.b_dec}
        if hasattr(self, "threshold"):
            out["threshold"] = self.threshold
        if include_decoder and self.W_dec is not None:
            out["W_dec"] = self.W_dec
        return {k: v.detach().contiguous() for k, v in out.items()}
