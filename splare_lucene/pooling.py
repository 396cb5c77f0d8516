"""Token latents -> one pooled vector per text: log(1 + ReLU), masked max over tokens, top-k.

Only this transformation lives here. Pooling is done in chunks of tokens so that a batch never
materialises (B, T, d_sae) at once: with 131k latents that would be gigabytes.
"""

from __future__ import annotations

import torch


def saturate(latents: torch.Tensor) -> torch.Tensor:
    """SPLADE's log-saturation: log(1 + ReLU(w))."""
    return torch.log1p(torch.relu(latents))


def max_pool(encode_tokens, hidden: torch.Tensor, pool_mask: torch.Tensor, d_out: int,
             max_elements: int = 1 << 24) -> torch.Tensor:
    """(B, T, d) hidden states -> (B, d_out) = max over pooled tokens of log(1 + ReLU(f(h))).

    ``encode_tokens`` maps (B, t, d) -> (B, t, d_out) (the SAE encoder, or an LM head). Tokens are
    processed in time chunks of at most ``max_elements / (B * d_out)`` positions. Masked positions
    contribute 0, which is neutral because every pooled value is >= 0.
    """
    B, T, _ = hidden.shape
    chunk = max(1, max_elements // max(1, B * d_out))
    pooled = None
    for start in range(0, T, chunk):
        h = hidden[:, start:start + chunk]  # (B, t, d)
        w = saturate(encode_tokens(h))  # (B, t, d_out)
        # where, not multiply: a masked position that overflows (BOS massive activations in
        # float16) would give inf * 0 = nan and poison the pooled row
        keep = pool_mask[:, start:start + chunk, None].bool()  # (B, t, 1)
        w = torch.where(keep, w, torch.zeros((), dtype=w.dtype, device=w.device))
        part = w.max(dim=1).values  # (B, d_out)
        pooled = part if pooled is None else torch.maximum(pooled, part)
    return pooled


def top_k(pooled: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of each row (k = 0: keep all). (B, d) -> (B, d)."""
    if k <= 0 or k >= pooled.shape[-1]:
        return pooled
    values, indices = torch.topk(pooled, k, dim=-1)
    return torch.zeros_like(pooled).scatter(-1, indices, values)
