"""pooling.py: chunked masked max-pool of log(1 + ReLU) against a naive loop, and top-k."""

from __future__ import annotations

import math

import pytest
import torch

from splare_lucene.pooling import linear_max_pool, max_pool, saturate, top_k

B, T, D, D_OUT = 3, 7, 5, 11


@pytest.fixture
def case():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(B, T, D, generator=g)  # (B, T, d)
    weight = torch.randn(D, D_OUT, generator=g)
    bias = torch.randn(D_OUT, generator=g) * 0.1
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 5:] = False  # padding
    mask[1, 0] = False  # a BOS left out of pooling
    mask[2, 2:4] = False
    return hidden, (lambda h: h @ weight + bias), mask


def naive(encode_tokens, hidden, mask, d_out):
    """Per row, per latent, per token: max of log1p(relu(f(h))) over pooled tokens (0 if none)."""
    out = torch.zeros(hidden.shape[0], d_out, dtype=torch.float64)
    for b in range(hidden.shape[0]):
        for t in range(hidden.shape[1]):
            if not mask[b, t]:
                continue
            latents = encode_tokens(hidden[b:b + 1, t:t + 1])[0, 0]  # (d_out,)
            for j in range(d_out):
                value = math.log1p(max(0.0, float(latents[j])))
                out[b, j] = max(out[b, j], value)
    return out


def test_saturate():
    x = torch.tensor([-3.0, 0.0, 1.0, math.e - 1])
    assert torch.allclose(saturate(x), torch.tensor([0.0, 0.0, math.log(2.0), 1.0]))


def test_max_pool_matches_naive_loop(case):
    hidden, f, mask = case
    pooled = max_pool(f, hidden, mask, D_OUT)
    assert pooled.shape == (B, D_OUT)
    assert torch.allclose(pooled.double(), naive(f, hidden, mask, D_OUT), atol=1e-6)
    assert (pooled > 0).any()  # the case is not trivially all zeros


@pytest.mark.parametrize("max_elements", [1, B * D_OUT, 2 * B * D_OUT, 3 * B * D_OUT + 1])
def test_chunking_does_not_change_the_result(case, max_elements):
    hidden, f, mask = case
    seen = []

    def spy(h):
        seen.append(h.shape[1])
        return f(h)

    full = max_pool(f, hidden, mask, D_OUT)
    chunked = max_pool(spy, hidden, mask, D_OUT, max_elements=max_elements)
    assert torch.equal(chunked, full)
    chunk = max(1, max_elements // (B * D_OUT))
    assert sum(seen) == T
    assert max(seen) == min(chunk, T)
    assert len(seen) == math.ceil(T / chunk)


def test_masked_tokens_never_contribute(case):
    hidden, f, mask = case
    poisoned = hidden.clone()
    poisoned[~mask] = 1e6  # huge activations at every masked position
    assert torch.equal(max_pool(f, poisoned, mask, D_OUT, max_elements=B * D_OUT),
                       max_pool(f, hidden, mask, D_OUT, max_elements=B * D_OUT))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_masked_tokens_do_not_poison(case, bad):
    # float16 BOS states can overflow the SAE: inf * 0 would be nan
    hidden, f, mask = case
    poisoned = hidden.clone()
    poisoned[~mask] = bad
    pooled = max_pool(f, poisoned, mask, D_OUT)
    assert torch.isfinite(pooled).all()
    assert torch.equal(pooled, max_pool(f, hidden, mask, D_OUT))


def test_fully_masked_row_is_zero(case):
    hidden, f, mask = case
    mask = mask.clone()
    mask[1] = False
    pooled = max_pool(f, hidden, mask, D_OUT)
    assert torch.equal(pooled[1], torch.zeros(D_OUT))
    assert (pooled[0] > 0).any()


def test_integer_mask_is_accepted(case):
    hidden, f, mask = case
    assert torch.equal(max_pool(f, hidden, mask.long(), D_OUT), max_pool(f, hidden, mask, D_OUT))


def test_outputs_are_non_negative(case):
    hidden, _, mask = case
    pooled = max_pool(lambda h: -(h @ torch.ones(D, D_OUT)).abs(), hidden, mask, D_OUT)
    assert torch.equal(pooled, torch.zeros(B, D_OUT))  # all-negative latents pool to 0
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(D, D_OUT, generator=g) * 10
    assert (max_pool(lambda h: h @ weight, hidden, mask, D_OUT) >= 0).all()


def test_gradient_flows_through_pooled_tokens_only(case):
    hidden, _, mask = case
    weight = torch.randn(D, D_OUT, generator=torch.Generator().manual_seed(2), requires_grad=True)
    hidden = hidden.clone().requires_grad_(True)
    max_pool(lambda h: h @ weight, hidden, mask, D_OUT).sum().backward()
    assert hidden.grad[~mask].abs().sum() == 0
    assert hidden.grad[mask].abs().sum() > 0


# -- linear_max_pool (the LM head's fused pooling) ---------------------------------------------


@pytest.mark.parametrize("max_elements", [1, 30, 1 << 25])  # vocabulary chunks of 1, 1 and all
def test_linear_max_pool_equals_max_pool_values_and_gradients(case, max_elements):
    hidden, _, mask = case
    mask = mask.clone()
    mask[2] = False  # a text with nothing to pool
    g = torch.Generator().manual_seed(3)
    x = hidden.double().requires_grad_(True)
    weight = torch.randn(D_OUT, D, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(B, D_OUT, generator=g, dtype=torch.float64)

    ref = max_pool(lambda h: h @ weight.t(), x, mask, D_OUT)
    out = linear_max_pool(x, weight, mask, max_elements)
    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.equal(out[2], torch.zeros(D_OUT, dtype=torch.float64))
    ref_grads = torch.autograd.grad((ref * upstream).sum(), (x, weight))
    out_grads = torch.autograd.grad((out * upstream).sum(), (x, weight))
    for got, want in zip(out_grads, ref_grads):
        assert torch.allclose(got, want, atol=1e-12)
    assert out_grads[0][~mask].abs().sum() == 0


def test_linear_max_pool_input_gradient_alone(case):
    # the training path: LM head frozen, so only the input gradient is built (sparse product)
    hidden, _, mask = case
    weight = torch.randn(D_OUT, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x = hidden.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda h: linear_max_pool(h, weight, mask), (x,))


def test_linear_max_pool_ignores_overflowing_masked_tokens(case):
    hidden, _, mask = case
    weight = torch.randn(D_OUT, D, generator=torch.Generator().manual_seed(5))
    poisoned = hidden.clone()
    poisoned[~mask] = float("inf")
    assert torch.equal(linear_max_pool(poisoned, weight, mask), linear_max_pool(hidden, weight, mask))


# -- top_k --------------------------------------------------------------------------------------


def test_top_k_keeps_exactly_the_k_largest():
    g = torch.Generator().manual_seed(3)
    pooled = torch.rand(4, 50, generator=g)
    for k in (1, 5, 49):
        kept = top_k(pooled, k)
        assert kept.shape == pooled.shape
        for row, original in zip(kept, pooled):
            nonzero = row.nonzero().flatten()
            assert nonzero.numel() == k
            assert set(nonzero.tolist()) == set(original.argsort(descending=True)[:k].tolist())
            assert torch.equal(row[nonzero], original[nonzero])  # values unchanged
            assert row[nonzero].min() >= original[row == 0].max()


def test_top_k_does_not_modify_its_input():
    pooled = torch.tensor([[3.0, 1.0, 2.0]])
    top_k(pooled, 1)
    assert torch.equal(pooled, torch.tensor([[3.0, 1.0, 2.0]]))


@pytest.mark.parametrize("k", [0, -1, 3, 10])
def test_top_k_no_cut(k):
    pooled = torch.tensor([[0.5, 0.0, 2.0], [1.0, 3.0, 0.1]])
    assert torch.equal(top_k(pooled, k), pooled)


def test_top_k_example():
    pooled = torch.tensor([[0.1, 0.9, 0.0, 0.5], [2.0, 0.0, 3.0, 1.0]])
    assert torch.equal(top_k(pooled, 2), torch.tensor([[0.0, 0.9, 0.0, 0.5], [2.0, 0.0, 3.0, 0.0]]))


@pytest.mark.parametrize("softcap", [None, 0.5])
@pytest.mark.parametrize("with_bias", [False, True])
def test_vocab_head_pool_equals_dense_max_pool(softcap, with_bias):
    """VocabHead.pool (fused) equals max_pool over encode, with Gemma 2's final-logit softcap and
    with an LM-head bias; gradients agree too."""
    from splare_lucene.pooling import max_pool
    from splare_lucene.vocab_head import VocabHead

    torch.manual_seed(0)
    norm, head = torch.nn.LayerNorm(6).double(), torch.nn.Linear(6, 11, bias=with_bias).double()
    vocab = VocabHead(norm, head, logit_softcap=softcap)
    h = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    fused = vocab.pool(h, mask)
    dense = max_pool(vocab.encode, h, mask, vocab.width)
    torch.testing.assert_close(fused, dense)
    if softcap:
        assert float(fused.detach().max()) <= torch.log1p(torch.tensor(softcap)).item() + 1e-12
    (g_fused,) = torch.autograd.grad(fused.sum(), h)
    (g_dense,) = torch.autograd.grad(dense.sum(), h)
    torch.testing.assert_close(g_fused, g_dense)
