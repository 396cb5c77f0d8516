"""Token latents -> one pooled vector per text: log(1 + ReLU), masked max over tokens, top-k.

Only this transformation lives here. Pooling is done in chunks (of tokens or of latents) so that
a batch never materialises (B, T, d_sae) at once: with 131k latents that would be gigabytes.

Two paths: ``max_pool`` applies any per-token encoder and lets autograd keep each chunk's
intermediates for backward (about 3 float32 (B, T, d_sae) tensors in training); the fused
``affine_max_pool`` / ``linear_max_pool`` take the max on the affine pre-activations and keep only
an int32 (B, d_sae) argmax (``_MaskedMaxAffine``). Heads choose: ``SparseAutoencoder.pool`` and
``VocabHead.pool`` use the fused path whenever it gives the same result.
"""

from __future__ import annotations

import warnings

import torch

from .errors import ConfigError


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


class _MaskedMaxAffine(torch.autograd.Function):
    """m[b, v] = max over pooled tokens t of pre[b, t, v], with argmax; sparse backward.

    ``pre[b, t, v] = (x[b, t] * scale - shift) . W[v] + bias[v]`` is an affine map of the hidden
    states: an LM head (scale 1, no shift, no bias) or an SAE encoder (``W = W_enc.T``,
    ``bias = b_enc``, ``shift = b_dec`` when the SAE subtracts it, ``scale = input_scale``).
    With ``token_top_k = k`` a token only competes for the k latents where its pre-activations
    are largest (a TopK SAE's per-token selection); other (token, latent) pairs count as absent.
    ``m[b, v]`` is 0, and its argmax -1, where no pooled token competes for v.

    Forward: without top-k, in chunks of latents (each weight chunk is read once, all tokens at a
    time); with top-k, in chunks of tokens (the selection needs a token's full latent row). Either
    way a chunk holds at most ``max_elements`` pre-activations, and nothing (B, T, V)-sized is kept.

    Backward: each m[b, v] depends on one token only (its argmax), so the input gradient is a
    sparse (B*T, V) matrix S with at most V entries per text, times W: T times fewer operations
    than the dense (B, T, V) x (V, d) product, and no (B, T, V) gradient buffer. Saved for
    backward: ``x`` (the hidden states, kept by the backbone anyway), the weights, and the int32
    argmax, (B, V): 1/T of one float32 (B, T, V) tensor. Ties: when several tokens share the
    maximum, the whole gradient goes to the one ``torch.max`` reports (the first on CPU); the
    dense pooling may pick another tied token or split it between token chunks. Both are valid
    subgradients with the same sum over the tied tokens.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, shift, pool_mask, scale, token_top_k, max_elements):
        B, T, _ = x.shape
        V = weight.shape[0]
        x_in = _affine_input(x, scale, shift)  # (B, T, d), a temporary: not saved
        keep = pool_mask.bool()[:, :, None]  # (B, T, 1)
        if token_top_k is None:
            values = torch.empty(B, V, dtype=x_in.dtype, device=x.device)
            argmax = torch.empty(B, V, dtype=torch.long, device=x.device)
            chunk = max(1, max_elements // max(1, B * T))
            for start in range(0, V, chunk):
                logits = x_in @ weight[start:start + chunk].t()  # (B, T, c)
                # in place: one chunk-sized buffer at a time. Fill, not multiply: masked
                # positions may overflow (BOS in float16), and inf * 0 is nan
                if bias is not None:
                    logits += bias[start:start + chunk]
                best = logits.masked_fill_(~keep, float("-inf")).max(dim=1)
                values[:, start:start + chunk] = best.values
                argmax[:, start:start + chunk] = best.indices
            has_token = keep.any(dim=1).expand(B, V)  # (B, V)
        else:
            values, argmax = _top_k_token_max(x_in, weight, bias, keep, token_top_k, max_elements)
            has_token = argmax >= 0
        values = torch.where(has_token, values, torch.zeros((), dtype=values.dtype, device=x.device))
        argmax = torch.where(has_token, argmax, -1).to(torch.int32)  # int32: half the saved bytes
        ctx.scale = scale
        ctx.max_elements = max_elements
        ctx.save_for_backward(x, weight, shift, argmax)
        ctx.mark_non_differentiable(argmax)
        return values, argmax

    @staticmethod
    def backward(ctx, grad_values, _grad_argmax):
        x, weight, shift, argmax = ctx.saved_tensors
        B, T, d = x.shape
        V = weight.shape[0]
        # only entries that matter: a token pooled them, and the activation let gradient through
        b_idx, v_idx = ((grad_values != 0) & (argmax >= 0)).nonzero(as_tuple=True)
        coeff = grad_values[b_idx, v_idx]
        rows = b_idx * T + argmax[b_idx, v_idx].long()  # flat (b, t) of each entry's argmax token
        grad_x = grad_w = grad_bias = grad_shift = None
        if ctx.needs_input_grad[0]:
            grad_x = _sparse_rows_times(rows, v_idx, coeff, weight, B * T, ctx.max_elements)
            if ctx.scale != 1.0:
                grad_x = grad_x * ctx.scale
            grad_x = grad_x.to(x.dtype).view(B, T, d)
        if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
            per_latent = torch.zeros(V, dtype=coeff.dtype, device=coeff.device).index_add_(0, v_idx, coeff)
            if ctx.needs_input_grad[2]:
                grad_bias = per_latent
            if ctx.needs_input_grad[3]:  # d pre / d shift = -W[v]
                grad_shift = -(per_latent.to(weight.dtype) @ weight)
        if ctx.needs_input_grad[1]:  # heads are frozen in training; kept for completeness
            step = 1 << 16
            flat = x.reshape(B * T, d)
            grad_w = torch.zeros_like(weight)
            for s in range(0, len(rows), step):
                sl = slice(s, s + step)
                x_rows = _affine_input(flat[rows[sl]], ctx.scale, shift)  # (n, d)
                grad_w.index_add_(0, v_idx[sl], coeff[sl, None].to(weight.dtype) * x_rows)
        return grad_x, grad_w, grad_bias, grad_shift, None, None, None, None


def _affine_input(x: torch.Tensor, scale: float, shift: torch.Tensor | None) -> torch.Tensor:
    """``x * scale - shift``, in the order ``SparseAutoencoder.pre_activation`` uses (same bits)."""
    if scale != 1.0:
        x = x * scale
    if shift is not None:
        x = x - shift
    return x


def _top_k_token_max(x_in, weight, bias, keep, k, max_elements):
    """Per latent v: max and argmax of pre[b, t, v] over the pooled tokens t that have v among
    their k largest pre-activations. (B, V) values (-inf: none) and (B, V) int64 argmax (-1)."""
    B, T, _ = x_in.shape
    V = weight.shape[0]
    neg = torch.tensor(float("-inf"), dtype=x_in.dtype, device=x_in.device)
    values = torch.full((B, V), float("-inf"), dtype=x_in.dtype, device=x_in.device)
    argmax = torch.full((B, V), -1, dtype=torch.long, device=x_in.device)
    chunk = max(1, max_elements // max(1, B * V))
    w_t = weight.t()  # (d, V): an SAE's own W_enc
    for start in range(0, T, chunk):
        h = x_in[:, start:start + chunk]  # (B, t, d)
        # flattened to 2-D first: a token slice of a (B, T, d) tensor is not contiguous, and
        # matmul then broadcasts W over B in a bmm, ~10x slower than one mm on CPU (torch 2.13)
        pre = (h.reshape(-1, h.shape[-1]) @ w_t).view(B, h.shape[1], V)  # (B, t, V), a temporary
        if bias is not None:
            pre += bias  # in place: one chunk-sized buffer
        top, idx = torch.topk(pre, k, dim=-1)  # (B, t, k) each
        del pre
        top = torch.where(keep[:, start:start + chunk], top, neg)
        flat_idx, flat_top = idx.reshape(B, -1), top.reshape(B, -1)  # (B, t*k)
        best = torch.full_like(values, float("-inf")).scatter_reduce_(1, flat_idx, flat_top, "amax")
        # the first token reaching the chunk's max, per latent
        tokens = torch.arange(start, start + top.shape[1], device=x_in.device)[None, :, None]
        tokens = tokens.expand_as(idx).reshape(B, -1)
        hit = (flat_top == best.gather(1, flat_idx)) & (flat_top > neg)
        first = torch.full_like(argmax, T).scatter_reduce_(1, flat_idx, torch.where(hit, tokens, T), "amin")
        better = best > values  # strict: an earlier chunk keeps a tie
        values = torch.where(better, best, values)
        argmax = torch.where(better, first, argmax)
    return values, argmax


def _sparse_rows_times(rows: torch.Tensor, cols: torch.Tensor, coeff: torch.Tensor,
                       weight: torch.Tensor, n_rows: int, max_elements: int) -> torch.Tensor:
    """S @ weight for S (n_rows, V) with ``coeff`` at (rows, cols): (n_rows, d), in float32 at least.

    A CSR product reads each needed weight row once, far faster than gathering rows for an
    index_add. It runs in chunks of weight rows (at most ``max_elements`` weights each), so that a
    transposed weight (an SAE's ``W_enc.T``) or a half-precision one is copied chunk by chunk,
    never whole. torch 2.x has no bfloat16/float16 CPU kernel for sparse CSR @ dense
    (NotImplementedError "addmm_out_sparse_csr_impl_mkl" not implemented for 'BFloat16'): half
    precision is multiplied in float32, which is also the better accumulator.
    """
    V, d = weight.shape
    dtype = torch.promote_types(weight.dtype, torch.float32)
    out = torch.zeros(n_rows, d, dtype=dtype, device=weight.device)
    chunk = max(1, max_elements // max(1, d))
    n_chunks = -(-V // chunk)
    # entries grouped by weight chunk, then by row (CSR order within each chunk)
    group = cols // chunk
    order = torch.argsort(group * n_rows + rows)
    rows, cols, coeff, group = rows[order], cols[order], coeff[order].to(dtype), group[order]
    ends = torch.cumsum(torch.bincount(group, minlength=n_chunks), 0).tolist()
    begin = 0
    for c, end in enumerate(ends):
        if end == begin:
            continue
        lo = c * chunk
        w = weight[lo:lo + chunk].to(dtype).contiguous()  # (c, d): a view when nothing to convert
        crow = torch.zeros(n_rows + 1, dtype=torch.long, device=weight.device)
        crow[1:] = torch.cumsum(torch.bincount(rows[begin:end], minlength=n_rows), 0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": we use only CSR @ dense
            warnings.simplefilter("ignore", UserWarning)
            S = torch.sparse_csr_tensor(crow, cols[begin:end] - lo, coeff[begin:end],
                                        (n_rows, w.shape[0]), check_invariants=False)
        out += S @ w
        begin = end
    return out


def linear_max_pool(x: torch.Tensor, weight: torch.Tensor, pool_mask: torch.Tensor,
                    max_elements: int = 1 << 25) -> torch.Tensor:
    """``max_pool`` for a bias-free linear map ``x @ weight.T`` (an LM head), fused and sparse.

    (B, T, d), (V, d), (B, T) -> (B, V), equal to ``max_pool(lambda h: h @ weight.T, ...)``. As
    log(1 + ReLU) is monotone, the max of the logits is taken first and saturated once; see
    ``_MaskedMaxAffine`` for why the backward is cheap. Works in bfloat16/float16 on CPU too (the
    backward's sparse product runs in float32).
    """
    values, _ = _MaskedMaxAffine.apply(x, weight, None, None, pool_mask, 1.0, None, max_elements)
    return saturate(values)


def affine_max_pool(x: torch.Tensor, weight: torch.Tensor, pool_mask: torch.Tensor, *,
                    bias: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                    scale: float = 1.0, token_top_k: int | None = None,
                    max_elements: int = 1 << 24) -> torch.Tensor:
    """Max over pooled tokens of an affine map, before any activation: (B, T, d) -> (B, V).

    ``m[b, v] = max_t ((x[b, t] * scale - shift) @ weight.T + bias)[v]`` over tokens with
    ``pool_mask`` set (and, with ``token_top_k = k``, only over tokens that have v among their k
    largest values); 0 where no token qualifies. ``weight`` is (V, d) (pass ``W_enc.T`` for an
    SAE: a view, no copy), ``bias`` (V,), ``shift`` (d,). For any non-decreasing activation
    ``act``, ``saturate(act(m))`` equals ``max_pool`` of ``saturate(act(pre))`` (see
    ``SparseAutoencoder.pool``), and its backward keeps only an int32 (B, V) argmax besides
    ``x`` and the weights (``_MaskedMaxAffine``). ``max_elements`` bounds the pre-activations
    computed at a time (a runtime knob: it does not change the result).

    Raises ConfigError if ``token_top_k`` is not in 1..V.
    """
    if token_top_k is not None and not 0 < token_top_k <= weight.shape[0]:
        raise ConfigError(f"token_top_k must be in 1..{weight.shape[0]} (the number of latents); "
                          f"got {token_top_k}")
    values, _ = _MaskedMaxAffine.apply(x, weight, bias, shift, pool_mask, float(scale), token_top_k,
                                       max_elements)
    return values


def top_k(pooled: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of each row (k = 0: keep all). (B, d) -> (B, d)."""
    if k <= 0 or k >= pooled.shape[-1]:
        return pooled
    values, indices = torch.topk(pooled, k, dim=-1)
    return torch.zeros_like(pooled).scatter(-1, indices, values)
