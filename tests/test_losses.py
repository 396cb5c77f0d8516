"""Training losses against their definitions, computed independently."""

from __future__ import annotations

import math

import pytest
import torch

from splare_lucene.train.losses import candidate_scores, flops, flops_weight, info_nce, kl_distillation


def test_candidate_scores_pair_each_query_with_its_own_candidates():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    d = torch.tensor([[3.0, 1.0], [1.0, 1.0], [5.0, 7.0], [0.0, 1.0]])  # 2 candidates per query
    assert candidate_scores(q, d).tolist() == [[3.0, 1.0], [14.0, 2.0]]


def test_kl_distillation_matches_definition_and_temperature():
    student = torch.tensor([[40.0, 80.0, 0.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0]])
    tau = 40.0
    p = torch.softmax(teacher, -1)
    log_s = torch.log_softmax(student / tau, -1)
    expected = float((p * (p.log() - log_s)).sum())
    assert kl_distillation(student, teacher, tau).item() == pytest.approx(expected, rel=1e-5)
    assert kl_distillation(teacher * 10, teacher, 10.0).item() == pytest.approx(0.0, abs=1e-6)


def test_info_nce_in_batch_uses_every_candidate():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    scores = q @ d.t()
    expected = (-(torch.log_softmax(scores, -1)[0, 0]) - torch.log_softmax(scores, -1)[1, 2]) / 2
    assert info_nce(q, d).item() == pytest.approx(expected.item(), rel=1e-5)
    own = torch.tensor([[2.0, 1.0], [3.0, 1.0]])
    expected_own = -(torch.log_softmax(own, -1)[:, 0]).mean()
    assert info_nce(q, d, in_batch=False).item() == pytest.approx(expected_own.item(), rel=1e-5)


def test_flops_is_sum_of_squared_mean_activations():
    x = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert flops(x).item() == pytest.approx(2.0 ** 2 + 0 + 1.0 ** 2)


def test_flops_weight_warms_up_quadratically():
    assert flops_weight(0, 1e-4, 10) == pytest.approx(1e-6)
    assert flops_weight(4, 1e-4, 10) == pytest.approx(1e-4 * 0.25)
    assert flops_weight(10, 1e-4, 10) == 1e-4 and flops_weight(3, 1e-4, 0) == 1e-4
    assert not math.isnan(flops_weight(0, 0.0, 5))


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_losses_compute_in_float32_from_half_precision_vectors(half):
    # scores of ~2000 (SAE vectors): bf16 resolves them only to steps of 8
    g = torch.Generator().manual_seed(0)
    q32 = (torch.rand(2, 64, generator=g) * 8).to(half).float()  # values representable in `half`
    d32 = (torch.rand(6, 64, generator=g) * 8).to(half).float()
    q, d = q32.to(half), d32.to(half)
    scores = candidate_scores(q, d)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, candidate_scores(q32, d32))
    teacher = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, 1.0]])
    kl = kl_distillation(scores.to(half), teacher.to(half), 80.0)
    assert kl.dtype == torch.float32
    for loss in (info_nce(q, d, 50.0), info_nce(q, d, 50.0, in_batch=False), flops(q)):
        assert loss.dtype == torch.float32
    assert info_nce(q, d, 50.0).item() == pytest.approx(info_nce(q32, d32, 50.0).item(), rel=1e-6)
    assert flops(d).item() == pytest.approx(flops(d32).item(), rel=1e-6)
    q.requires_grad_(True)
    info_nce(q, d, 50.0).backward()
    assert q.grad.dtype == half  # the gradient flows back to the backbone's dtype
    q64, d64 = q32.double(), d32.double()  # float64 (gradient checks) is not narrowed
    assert candidate_scores(q64, d64).dtype == torch.float64 and flops(q64).dtype == torch.float64
