"""The vocabulary representation (SPLADE on an LLM, the paper's "SPLADE-Llama" baseline): token
logits from the backbone's own final norm and LM head, pooled exactly like SAE latents."""

from __future__ import annotations

from torch import nn


class VocabHead(nn.Module):
    """(..., d_model) hidden states -> (..., vocab) logits: ``lm_head(final_norm(h))``."""

    def __init__(self, final_norm: nn.Module | None, lm_head: nn.Module):
        super().__init__()
        self.final_norm = final_norm if final_norm is not None else nn.Identity()
        self.lm_head = lm_head
        self.width = int(lm_head.weight.shape[0])

    def encode(self, h):
        return self.lm_head(self.final_norm(h.to(self.lm_head.weight.dtype)))

    forward = encode

    def pool(self, h, pool_mask):
        """(B, T, d), (B, T) -> (B, vocab): ``max_pool`` of ``encode`` without its (B, T, vocab)
        logits, through ``pooling.linear_max_pool`` (several times faster to train)."""
        from .pooling import linear_max_pool, max_pool

        if getattr(self.lm_head, "bias", None) is not None:
            return max_pool(self.encode, h, pool_mask, self.width)
        return linear_max_pool(self.final_norm(h.to(self.lm_head.weight.dtype)), self.lm_head.weight, pool_mask)
