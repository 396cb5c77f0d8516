"""The SAE heads' fused pooling (``SparseAutoencoder.pool``): same values as the dense
``max_pool`` over ``encode``, the same gradients, and a backward that keeps no (B, T, d_sae)
tensor. Also the LM head's sparse backward in bfloat16 on CPU."""

from __future__ import annotations

import pytest
import torch

from splare_lucene.errors import ConfigError
from splare_lucene.pooling import affine_max_pool, linear_max_pool
from splare_lucene.sae import build_sae
from splare_lucene.sae.config import SAEConfig

B, T, D_IN, D_SAE, K = 3, 6, 5, 16, 3
ARCHS = ["relu", "jumprelu", "topk"]


def make_sae(architecture: str, dtype=torch.float64, seed: int = 0, d_in: int = D_IN,
             d_sae: int = D_SAE):
    """A random SAE with every input transform on: input_scale, b_dec subtracted, and for JumpReLU
    per-latent thresholds of both signs (negative ones make it a plain ReLU on that latent)."""
    g = torch.Generator().manual_seed(seed)
    config = SAEConfig(architecture=architecture, d_in=d_in, d_sae=d_sae,
                       k=K if architecture == "topk" else None, apply_b_dec_to_input=True,
                       input_scale=1.7)
    tensors = {"W_enc": torch.randn(d_in, d_sae, generator=g, dtype=dtype),
               "b_enc": torch.randn(d_sae, generator=g, dtype=dtype) * 0.5,
               "b_dec": torch.randn(d_in, generator=g, dtype=dtype) * 0.3}
    tensors["b_enc"][:2] = -50.0  # two latents no token activates
    if architecture == "jumprelu":
        tensors["threshold"] = torch.linspace(-1.0, 1.5, d_sae, dtype=dtype)
    return build_sae(config, tensors)


def make_inputs(dtype=torch.float64, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, D_IN, generator=g, dtype=dtype)  # (B, T, d_in)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 4:] = False  # padding
    mask[1] = False  # a text with nothing to pool
    mask[2, 0] = False  # a BOS left out of pooling
    return hidden, mask


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("architecture", ARCHS)
@pytest.mark.parametrize("max_elements", [1, 40, 1 << 24])  # chunks of 1 latent/token, some, all
def test_pool_values_equal_dense_pooling(architecture, dtype, atol, max_elements):
    sae = make_sae(architecture, dtype)
    hidden, mask = make_inputs(dtype)
    fused = sae.pool(hidden, mask, max_elements=max_elements)
    dense = sae.pool_dense(hidden, mask)
    assert fused.shape == (B, D_SAE) and fused.dtype == dtype
    assert torch.allclose(fused, dense, atol=atol, rtol=0)
    assert torch.equal(fused[1], torch.zeros(D_SAE, dtype=dtype))  # all-masked row
    assert (fused[0] > 0).any() and (fused[0] == 0).any()  # neither trivially full nor empty


def test_jumprelu_negative_thresholds_pool_like_relu():
    # thr < 0: relu(p) * [p > thr] == relu(p); the fused max must not treat [p > thr] as a gate
    # that a smaller token could open
    sae = make_sae("jumprelu")
    sae.threshold.data.fill_(-0.5)
    relu = make_sae("relu")
    hidden, mask = make_inputs()
    assert torch.allclose(sae.pool(hidden, mask), relu.pool(hidden, mask), atol=1e-12)
    assert torch.allclose(sae.pool(hidden, mask), sae.pool_dense(hidden, mask), atol=1e-12)


@pytest.mark.parametrize("architecture", ARCHS)
def test_pool_gradcheck_wrt_hidden_states(architecture):
    sae = make_sae(architecture)  # float64; SAE weights frozen: gradient w.r.t. hidden only
    hidden, mask = make_inputs()
    hidden.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda h: sae.pool(h, mask, max_elements=40), (hidden,))


@pytest.mark.parametrize("architecture", ARCHS)
def test_pool_gradient_equals_dense_autograd(architecture):
    sae = make_sae(architecture)
    hidden, mask = make_inputs()
    hidden.requires_grad_(True)
    upstream = torch.randn(B, D_SAE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (fused,) = torch.autograd.grad((sae.pool(hidden, mask) * upstream).sum(), hidden)
    (dense,) = torch.autograd.grad((sae.pool_dense(hidden, mask) * upstream).sum(), hidden)
    assert torch.allclose(fused, dense, atol=1e-12)
    assert fused[~mask].abs().sum() == 0 and fused[mask].abs().sum() > 0


@pytest.mark.parametrize("architecture", ARCHS)
def test_tied_tokens_get_the_whole_gradient_on_one_of_them(architecture):
    # tokens 1 and 2 of text 0 are identical: every latent's max is tied between them
    sae = make_sae(architecture)
    hidden, mask = make_inputs()
    hidden[0, 2] = hidden[0, 1]
    hidden.requires_grad_(True)
    (fused,) = torch.autograd.grad(sae.pool(hidden, mask).sum(), hidden)
    (dense,) = torch.autograd.grad(sae.pool_dense(hidden, mask).sum(), hidden)
    assert torch.allclose(fused[0, 1] + fused[0, 2], dense[0, 1] + dense[0, 2], atol=1e-12)
    tied = fused[0, 1:3].abs().sum(dim=-1)
    assert (tied > 0).sum() == 1  # documented: one tied token gets it all (the first on CPU)


def test_masked_overflowing_tokens_do_not_poison_the_fused_pool():
    for architecture in ARCHS:
        sae = make_sae(architecture, torch.float32)
        hidden, mask = make_inputs(torch.float32)
        poisoned = hidden.clone()
        poisoned[~mask] = float("inf")  # float16 BOS states can overflow
        assert torch.equal(sae.pool(poisoned, mask), sae.pool(hidden, mask))


def saved_bytes(fn, excluded: list[torch.Tensor]) -> int:
    """Bytes autograd keeps for backward while ``fn()`` runs, counting each storage once and
    leaving out ``excluded`` (the hidden states input and the frozen weights)."""
    seen: dict[int, int] = {}
    skip = {t.untyped_storage().data_ptr() for t in excluded}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("architecture", ARCHS)
def test_saved_for_backward_does_not_grow_with_tokens_times_latents(architecture):
    t, d_sae = 128, 256
    sae = make_sae(architecture, torch.float32, d_in=8, d_sae=d_sae)
    hidden = torch.randn(2, t, 8, requires_grad=True)
    mask = torch.ones(2, t, dtype=torch.bool)
    one = 2 * t * d_sae * 4  # one float32 (B, T, d_sae) tensor
    weights = [sae.W_enc, sae.b_enc, sae.b_dec, hidden] + ([sae.threshold] if architecture == "jumprelu" else [])
    fused = saved_bytes(lambda: sae.pool(hidden, mask), weights)
    dense = saved_bytes(lambda: sae.pool_dense(hidden, mask), weights)
    assert fused <= 0.05 * one  # the target at T >= 128
    assert dense >= one  # the dense path keeps at least one such tensor (the reason for the fused one)


def test_fallback_to_dense_pooling_when_the_activation_is_not_monotone():
    sae = make_sae("relu")
    sae.monotone_activation = False
    sae.activate = lambda pre: torch.relu(-pre)  # non-increasing: max-then-act would be wrong
    hidden, mask = make_inputs()
    assert torch.allclose(sae.pool(hidden, mask), sae.pool_dense(hidden, mask), atol=1e-12)


def test_affine_max_pool_gradcheck_all_inputs():
    # weights are frozen in training, but the Function's gradients for them are still right
    g = torch.Generator().manual_seed(3)
    hidden, mask = make_inputs()
    weight = torch.randn(D_SAE, D_IN, generator=g, dtype=torch.float64)
    bias = torch.randn(D_SAE, generator=g, dtype=torch.float64)
    shift = torch.randn(D_IN, generator=g, dtype=torch.float64)
    inputs = tuple(t.requires_grad_(True) for t in (hidden, weight, bias, shift))
    for k in (None, K):
        assert torch.autograd.gradcheck(
            lambda h, w, b, s: affine_max_pool(h, w, mask, bias=b, shift=s, scale=0.7,
                                               token_top_k=k, max_elements=30), inputs)


@pytest.mark.parametrize("k", [0, D_SAE + 1])
def test_affine_max_pool_rejects_bad_top_k(k):
    hidden, mask = make_inputs()
    with pytest.raises(ConfigError, match=f"token_top_k must be in 1..{D_SAE}"):
        affine_max_pool(hidden, torch.zeros(D_SAE, D_IN, dtype=torch.float64), mask, token_top_k=k)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_linear_max_pool_half_precision_backward_on_cpu(dtype):
    # torch has no bf16/fp16 CPU kernel for sparse CSR @ dense: the product runs in float32
    g = torch.Generator().manual_seed(4)
    hidden, mask = make_inputs(torch.float32)
    weight = torch.randn(D_SAE, D_IN, generator=g)
    upstream = torch.rand(B, D_SAE, generator=g)
    x32 = hidden.clone().requires_grad_(True)
    (want,) = torch.autograd.grad((linear_max_pool(x32, weight, mask) * upstream).sum(), x32)
    x16 = hidden.to(dtype).requires_grad_(True)
    out = linear_max_pool(x16, weight.to(dtype), mask)
    (got,) = torch.autograd.grad((out.float() * upstream).sum(), x16)
    assert got.dtype == dtype
    assert torch.allclose(got.float(), want, atol=0.05, rtol=0.02)
