"""Token latents -> one pooled vector per text: log(1 + ReLU), masked max over tokens, top-k.

Only this transformation lives here. Pooling is done in chunks of tokens so that a batch never
materialises (B, T, d_sae) at once: with 131k latents that would be gigabytes.
"""

from __future__ import annotations

import warnings

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


class _MaskedMaxLinear(torch.autograd.Function):
    """m[b, v] = max over pooled tokens t of x[b, t] . W[v] (0 for a text with no pooled token).

    Computed in vocabulary chunks, so (B, T, V) never exists at once. The backward is sparse:
    each m[b, v] depends on one token only (its argmax), so the input gradient is a sparse (B*T, V)
    matrix with at most V entries per text times W, instead of a dense (B, T, V) x (V, d) product:
    T times fewer operations, and no (B, T, V) gradient buffer.
    """

    @staticmethod
    def forward(ctx, x, weight, pool_mask, max_elements):
        B, T, _ = x.shape
        V = weight.shape[0]
        keep = pool_mask.bool()[:, :, None]  # (B, T, 1)
        chunk = max(1, max_elements // max(1, B * T))
        neg = torch.tensor(float("-inf"), dtype=x.dtype, device=x.device)
        values = torch.empty(B, V, dtype=x.dtype, device=x.device)
        argmax = torch.empty(B, V, dtype=torch.long, device=x.device)
        for start in range(0, V, chunk):
            logits = x @ weight[start:start + chunk].t()  # (B, T, c)
            # where, not multiply: masked positions may overflow (BOS in float16)
            best = torch.where(keep, logits, neg).max(dim=1)
            values[:, start:start + chunk] = best.values
            argmax[:, start:start + chunk] = best.indices
        has_token = keep.any(dim=1)  # (B, 1)
        values = torch.where(has_token, values, torch.zeros((), dtype=x.dtype, device=x.device))
        ctx.save_for_backward(x, weight, argmax)
        ctx.mark_non_differentiable(argmax)
        return values, argmax

    @staticmethod
    def backward(ctx, grad_values, _grad_argmax):
        x, weight, argmax = ctx.saved_tensors
        B, T, d = x.shape
        grad_x = grad_w = None
        b_idx, v_idx = grad_values.nonzero(as_tuple=True)  # only entries that matter (ReLU > 0)
        coeff = grad_values[b_idx, v_idx]
        rows = b_idx * T + argmax[b_idx, v_idx]  # flat (b, t) of each entry's argmax token
        if ctx.needs_input_grad[0]:
            # grad_x = S @ W with S (B*T, V) holding coeff at (argmax row, v): a CSR product reads
            # each needed weight row once, far faster than gathering them for an index_add
            order = torch.argsort(rows, stable=True)
            crow = torch.zeros(B * T + 1, dtype=torch.long, device=x.device)
            crow[1:] = torch.cumsum(torch.bincount(rows, minlength=B * T), 0)
            with warnings.catch_warnings():  # "sparse CSR support is in beta": we use only CSR @ dense
                warnings.simplefilter("ignore", UserWarning)
                S = torch.sparse_csr_tensor(crow, v_idx[order], coeff[order], (B * T, weight.shape[0]),
                                            check_invariants=False)
            grad_x = (S @ weight).view(B, T, d)
        if ctx.needs_input_grad[1]:  # the LM head is frozen in training; kept for completeness
            step = 1 << 16
            flat = x.reshape(B * T, d)
            grad_w = torch.zeros_like(weight)
            for s in range(0, len(rows), step):
                sl = slice(s, s + step)
                grad_w.index_add_(0, v_idx[sl], coeff[sl, None] * flat[rows[sl]])
        return grad_x, grad_w, None, None


def linear_max_pool(x: torch.Tensor, weight: torch.Tensor, pool_mask: torch.Tensor,
                    max_elements: int = 1 << 25) -> torch.Tensor:
    """``max_pool`` for a bias-free linear map ``x @ weight.T`` (an LM head), fused and sparse.

    (B, T, d), (V, d), (B, T) -> (B, V), equal to ``max_pool(lambda h: h @ weight.T, ...)``. As
    log(1 + ReLU) is monotone, the max of the logits is taken first and saturated once; see
    ``_MaskedMaxLinear`` for why the backward is cheap.
    """
    values, _ = _MaskedMaxLinear.apply(x, weight, pool_mask, max_elements)
    return saturate(values)


def top_k(pooled: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of each row (k = 0: keep all). (B, d) -> (B, d)."""
    if k <= 0 or k >= pooled.shape[-1]:
        return pooled
    values, indices = torch.topk(pooled, k, dim=-1)
    return torch.zeros_like(pooled).scatter(-1, indices, values)
