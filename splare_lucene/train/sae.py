"""Train a TopK SAE on streamed layer-L activations (OpenAI's recipe, Gao et al. 2024).

* activations are streamed: texts -> backbone cut at L -> non-padding, non-special tokens -> a
  shuffle buffer of bounded size -> minibatches; nothing is materialised beyond the buffer;
* inputs are scaled dataset-wise so that their mean norm is sqrt(d_in) (Llama Scope style); the
  scale is stored in the SAE config, so encoding applies it too;
* TopK activation, decoder rows kept at unit norm (gradient component along each row removed,
  then renormalised), AuxK loss on dead latents (k_aux, coefficient 1/32);
* held-out tokens (the first ones streamed) give FVU, mean L0 and the dead-latent share, for the
  TopK SAE and, optionally, a JumpReLU conversion with one global threshold.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import nn

from ..backbone import LoadedBackbone, hidden_states, tokenize
from ..sae import build_sae
from ..sae.config import SAEConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SAETrainConfig:
    d_sae: int = 8192
    k: int = 32
    token_budget: int = 1_000_000
    batch_tokens: int = 1024
    lr: float = 4e-4
    warmup_fraction: float = 0.05
    aux_k: int = 256
    aux_coef: float = 1 / 32
    dead_after_tokens: int = 200_000
    heldout_tokens: int = 16_384
    max_length: int = 128
    text_batch: int = 16
    text_shuffle_buffer: int = 20_000
    token_shuffle_buffer: int = 65_536
    pool_special_tokens: bool = False
    bidirectional: bool = False
    jumprelu: bool = False
    seed: int = 0


class TopKTrainingSAE(nn.Module):
    """Training-time TopK SAE with a decoder; ``to_inference`` gives the frozen encoder."""

    def __init__(self, d_in: int, d_sae: int, k: int, input_scale: float, b_dec_init: torch.Tensor):
        super().__init__()
        self.d_in, self.d_sae, self.k, self.input_scale = d_in, d_sae, k, input_scale
        W_dec = torch.randn(d_sae, d_in)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)  # (d_sae, d_in), unit-norm rows
        self.W_enc = nn.Parameter(W_dec.t().clone())  # (d_in, d_sae), tied init
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.b_dec = nn.Parameter(b_dec_init.clone())

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) already scaled -> (N, d_sae)."""
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def forward(self, x: torch.Tensor):
        pre = self.pre(x)
        values, indices = torch.topk(pre, self.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        recon = acts @ self.W_dec + self.b_dec
        return pre, acts, recon

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        if self.W_dec.grad is not None:
            rows = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            self.W_dec.grad -= (self.W_dec.grad * rows).sum(1, keepdim=True) * rows

    def to_inference(self, layer: int | None, threshold: float | None = None):
        arch = "jumprelu" if threshold is not None else "topk"
        config = SAEConfig(arch, self.d_in, self.d_sae, k=None if threshold is not None else self.k,
                           apply_b_dec_to_input=True, input_scale=float(self.input_scale), layer=layer,
                           hook_site="resid_post")  # trained on hidden_states(...): block L's output
        tensors = {"W_enc": self.W_enc, "b_enc": self.b_enc, "b_dec": self.b_dec, "W_dec": self.W_dec}
        tensors = {k: v.detach().float().cpu().clone() for k, v in tensors.items()}
        if threshold is not None:
            tensors["threshold"] = torch.full((self.d_sae,), float(threshold))
        return build_sae(config, tensors)


def _shuffled(texts: Iterable[str], size: int, rng: random.Random) -> Iterator[str]:
    """A bounded shuffle buffer over a stream of texts."""
    buffer: list[str] = []
    for text in texts:
        buffer.append(text)
        if len(buffer) >= size:
            i = rng.randrange(len(buffer))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def stream_activations(backbone: LoadedBackbone, texts: Iterable[str], cfg: SAETrainConfig,
                       device) -> Iterator[torch.Tensor]:
    """Yield (n, d_in) float32 activations of poolable tokens, text batch by text batch."""
    batch: list[str] = []

    def run(chunk):
        ids, attn, pool = tokenize(backbone, chunk, cfg.max_length, device, cfg.pool_special_tokens)
        with torch.inference_mode():
            h = hidden_states(backbone, ids, attn, cfg.bidirectional)  # (B, T, d)
        return h[pool].float()  # (n, d)

    for text in texts:
        batch.append(text)
        if len(batch) == cfg.text_batch:
            yield run(batch)
            batch = []
    if batch:
        yield run(batch)


@torch.no_grad()
def evaluate_sae(sae_forward, x: torch.Tensor, d_sae: int, chunk: int = 4096) -> dict:
    """FVU, mean L0 and dead share of ``sae_forward(x) -> (acts, recon)`` on held-out x (scaled)."""
    err = 0.0
    fired = torch.zeros(d_sae, dtype=torch.bool, device=x.device)
    l0 = 0.0
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        acts, recon = sae_forward(xb)
        err += float(((recon - xb) ** 2).sum())
        active = acts > 0
        l0 += float(active.sum())
        fired |= active.any(0)
    total = float(((x - x.mean(0)) ** 2).sum())
    return {"fvu": err / total, "mean_l0": l0 / x.shape[0],
            "dead_share": 1.0 - float(fired.float().mean()), "tokens": int(x.shape[0])}


def train_topk_sae(backbone: LoadedBackbone, layer: int, texts: Iterable[str], cfg: SAETrainConfig,
                   device: str = "cpu", progress: bool = True):
    """Train and return ``(inference SAE, report dict)``."""
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    d_in = backbone.hidden_size
    stream = stream_activations(backbone, _shuffled(texts, cfg.text_shuffle_buffer, rng), cfg, device)

    # Held-out tokens first; they also set the input scale and b_dec's initialisation.
    held: list[torch.Tensor] = []
    n_held = 0
    for acts in stream:
        held.append(acts)
        n_held += acts.shape[0]
        if n_held >= cfg.heldout_tokens:
            break
    if n_held == 0:
        raise ValueError("the training corpus produced no tokens; check --corpus")
    heldout_raw = torch.cat(held)[: cfg.heldout_tokens]
    input_scale = math.sqrt(d_in) / float(heldout_raw.norm(dim=-1).mean())
    heldout = heldout_raw * input_scale
    sae = TopKTrainingSAE(d_in, cfg.d_sae, cfg.k, input_scale, heldout.mean(0).cpu()).to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=6.25e-10)
    total_steps = max(1, cfg.token_budget // cfg.batch_tokens)
    warmup = max(1, int(cfg.warmup_fraction * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * min(1.0, 5.0 * (1 - s / total_steps) + 1e-3))
    last_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=device)  # tokens since last fire

    buffer = torch.empty(0, d_in, device=device)
    seen = 0
    step = 0
    start = time.time()
    bar = tqdm(total=cfg.token_budget, unit="tok", unit_scale=True, desc="train-sae", disable=not progress)

    def batches():
        nonlocal buffer
        for acts in stream:
            buffer = torch.cat([buffer, acts * input_scale])
            if buffer.shape[0] >= cfg.token_shuffle_buffer:
                buffer = buffer[torch.randperm(buffer.shape[0], device=device)]
                half = buffer.shape[0] // 2
                out, buffer = buffer[:half], buffer[half:]
                for i in range(0, out.shape[0] - cfg.batch_tokens + 1, cfg.batch_tokens):
                    yield out[i:i + cfg.batch_tokens]
        buffer = buffer[torch.randperm(buffer.shape[0], device=device)]
        for i in range(0, buffer.shape[0] - cfg.batch_tokens + 1, cfg.batch_tokens):
            yield buffer[i:i + cfg.batch_tokens]

    for x in batches():
        if seen >= cfg.token_budget:
            break
        pre, acts, recon = sae(x)
        var = ((x - x.mean(0)) ** 2).sum()
        mse = ((recon - x) ** 2).sum() / var  # normalised: this is the batch FVU
        last_fired += x.shape[0]
        last_fired[(acts > 0).any(0)] = 0
        dead = last_fired > cfg.dead_after_tokens
        aux = torch.zeros((), device=device)
        if dead.any():
            k_aux = min(cfg.aux_k, int(dead.sum()))
            dead_pre = pre.masked_fill(~dead, float("-inf"))
            values, indices = torch.topk(dead_pre, k_aux, dim=-1)
            aux_acts = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
            residual = (x - recon).detach()
            aux = ((aux_acts @ sae.W_dec - residual) ** 2).sum() / ((residual - residual.mean(0)) ** 2).sum()
            aux = torch.nan_to_num(aux, nan=0.0)
        loss = mse + cfg.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_parallel_grad()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        sched.step()
        sae.normalize_decoder()
        seen += x.shape[0]
        step += 1
        bar.update(x.shape[0])
        if step % 20 == 0:
            bar.set_postfix(fvu=f"{mse.item():.3f}", aux=f"{aux.item():.3f}",
                            dead=f"{float(dead.float().mean()):.1%}")
    bar.close()
    if seen < cfg.token_budget:
        logger.warning("the corpus ran out after %d training tokens (budget %d)", seen, cfg.token_budget)

    sae.eval()

    def topk_forward(x):
        _, a, r = sae(x)
        return a, r

    report = {"train_tokens": seen, "steps": step, "seconds": round(time.time() - start, 1),
              "input_scale": input_scale, "heldout": {"topk": evaluate_sae(topk_forward, heldout, cfg.d_sae)},
              "config": asdict(cfg)}
    threshold = None
    if cfg.jumprelu:
        # One global threshold: the mean k-th largest pre-activation on held-out tokens, so that
        # JumpReLU fires about k latents per token without a per-token sort at inference.
        with torch.no_grad():
            kth = torch.cat([torch.topk(sae.pre(heldout[i:i + 4096]), cfg.k, dim=-1).values[:, -1]
                             for i in range(0, heldout.shape[0], 4096)])
        threshold = max(float(kth.mean()), 0.0)

        def jump_forward(x):
            p = sae.pre(x)
            a = torch.relu(p) * (p > threshold)
            return a, a @ sae.W_dec + sae.b_dec

        report["heldout"]["jumprelu"] = evaluate_sae(jump_forward, heldout, cfg.d_sae)
        report["jumprelu_threshold"] = threshold
    return sae.to_inference(layer, threshold), report


def save_report(report: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
