"""Retrieval training losses: KL distillation (the paper's), InfoNCE, and FLOPS regularisation.

Shapes: ``q`` (B, V) pooled query vectors, ``d`` (B * n, V) pooled document vectors where each
query's ``n`` candidates are contiguous, the positive first.

Every function computes in float32 whatever its inputs' dtype (a bfloat16 or float16 backbone
gives half-precision vectors): bfloat16 keeps 8 significant bits, so a score of ~2000 would be
resolved only to steps of 8, and a sum over 100k latents loses more. Results are float32 (or
float64 for float64 inputs, which the gradient checks use).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors to float32 (differentiable); float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def candidate_scores(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """(B, V), (B*n, V) -> (B, n): each query against its own candidates."""
    q, d = _wide(q), _wide(d)
    B = q.shape[0]
    return torch.einsum("bv,bnv->bn", q, d.view(B, -1, d.shape[-1]))


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) over each query's candidates, student scores divided by ``temperature``.

    (B, n), (B, n) -> scalar. The paper uses tau = 80 with Llama Scope SAEs, 50 with Gemma Scope,
    10 for the vocabulary baseline: SAE vectors have much larger dot products.
    """
    student = _wide(student)
    teacher = _wide(teacher).to(student.dtype)
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    p_teacher = F.softmax(teacher, dim=-1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean")


def info_nce(q: torch.Tensor, d: torch.Tensor, temperature: float = 1.0, in_batch: bool = True) -> torch.Tensor:
    """Contrastive loss: the positive (candidate 0 of each query) against its hard negatives and,
    with ``in_batch``, every other query's candidates. (B, V), (B*n, V) -> scalar."""
    q, d = _wide(q), _wide(d)
    B = q.shape[0]
    n = d.shape[0] // B
    if in_batch:
        scores = q @ d.t()  # (B, B*n)
        target = torch.arange(B, device=q.device) * n
    else:
        scores = candidate_scores(q, d)  # (B, n)
        target = torch.zeros(B, dtype=torch.long, device=q.device)
    return F.cross_entropy(scores / temperature, target)


def flops(x: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser (Paria et al. 2020): sum over dimensions of the squared mean activation.

    (N, V) -> scalar. The mean is over the N rows given: with gradient accumulation, a micro-batch;
    with several processes the trainer passes the micro-batch gathered from all of them, since the
    square of a per-process mean would make sparsity depend on the number of processes.
    """
    return (_wide(x).abs().mean(dim=0) ** 2).sum()


def flops_weight(step: int, target: float, warmup_steps: int) -> float:
    """Quadratic warm-up of a FLOPS weight to ``target`` over ``warmup_steps`` (SPLADE's schedule)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return target
    return target * ((step + 1) / warmup_steps) ** 2
