"""The vocabulary representation (SPLADE on an LLM, the paper's "SPLADE-Llama" baseline): token
logits from the backbone's own final norm and LM head, pooled exactly like SAE latents."""

from __future__ import annotations

import torch
from torch import nn


class VocabHead(nn.Module):
    """(..., d_model) hidden states -> (..., vocab) logits: ``lm_head(final_norm(h))``, then
    ``cap * tanh(logits / cap)`` when the model softcaps its final logits (Gemma 2's
    ``final_logit_softcapping``, 30.0 for the released checkpoints; None for other families)."""

    def __init__(self, final_norm: nn.Module | None, lm_head: nn.Module, logit_softcap: float | None = None):
        super().__init__()
        self.final_norm = final_norm if final_norm is not None else nn.Identity()
        self.lm_head = lm_head
        self.width = int(lm_head.weight.shape[0])
        self.logit_softcap = logit_softcap

    def _softcap(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.logit_softcap:
            return logits
        return self.logit_softcap * torch.tanh(logits / self.logit_softcap)

    def encode(self, h):
        return self._softcap(self.lm_head(self.final_norm(h.to(self.lm_head.weight.dtype))))

    forward = encode

    def pool(self, h, pool_mask):
        """(B, T, d), (B, T) -> (B, vocab): ``max_pool`` of ``encode`` without its (B, T, vocab)
        logits, through ``pooling.affine_max_pool`` (sparse backward; several times faster to
        train). The softcap and log(1 + ReLU) are both non-decreasing, so they are applied once
        to the max of the raw logits (max_t g(l_t) = g(max_t l_t) for non-decreasing g; a text
        with no pooled token gets 0, and g(0) = 0)."""
        from .pooling import affine_max_pool, saturate

        weight = self.lm_head.weight
        logits_max = affine_max_pool(self.final_norm(h.to(weight.dtype)), weight, pool_mask,
                                     bias=getattr(self.lm_head, "bias", None), max_elements=1 << 25)
        return saturate(self._softcap(logits_max))
