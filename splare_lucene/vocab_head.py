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
