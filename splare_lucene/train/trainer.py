"""Retrieval fine-tuning: LoRA on the backbone (SAE or LM head frozen), KL distillation or
InfoNCE, FLOPS regularisation on queries and documents, resumable checkpoints."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from .data import TrainExample
from .losses import candidate_scores, flops, flops_weight, info_nce, kl_distillation

logger = logging.getLogger(__name__)

LOSSES = ("auto", "kl", "infonce")
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "auto"  # auto: KL when every example has teacher scores, else InfoNCE
    temperature: float = 1.0  # student temperature (KL) / InfoNCE temperature; 0 = auto (see train)
    in_batch_negatives: bool = True  # InfoNCE only
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    lr: float = 5e-5
    warmup_fraction: float = 0.01
    epochs: int = 1
    max_steps: int = 0  # 0: as many as the epochs give
    batch_size: int = 8
    grad_accum: int = 1
    negatives: int = 1
    query_max_length: int = 32
    doc_max_length: int = 128
    flops_query: float = 1e-4
    flops_doc: float = 1e-4
    flops_warmup_fraction: float = 0.3
    train_top_k: bool = False  # apply the inference top-k while training (the paper does not)
    gradient_checkpointing: bool = False
    save_every: int = 50
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {list(LOSSES)}; got {self.loss!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.negatives < 0:
            raise ConfigError("batch_size and grad_accum must be >= 1 and negatives >= 0")


@dataclass
class TrainState:
    step: int = 0
    history: list = field(default_factory=list)
    temperature: float = 0.0  # the auto temperature, once chosen (saved in checkpoints)


def _pick_loss(cfg: TrainConfig, examples: list[TrainExample]) -> str:
    has_scores = all(e.scores is not None for e in examples)
    if cfg.loss == "kl" and not has_scores:
        raise ConfigError("--loss kl needs teacher scores for every example ('scores' in the JSONL); "
                          "use --loss infonce")
    if cfg.loss == "auto":
        return "kl" if has_scores else "infonce"
    return cfg.loss


def _apply_lora(encoder, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    model = encoder.backbone.model
    present = {name.split(".")[-1] for name, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets:
        raise ConfigError(f"none of the LoRA target modules {list(cfg.target_modules)} exist in "
                          f"{type(model).__name__}; pass --target-modules (e.g. query,key,value for BERT)")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none")
    peft_model = get_peft_model(model, lora)
    encoder.backbone.model = peft_model
    encoder.peft_model = peft_model
    for p in encoder.head.parameters():
        p.requires_grad_(False)
    return peft_model


def _batches(examples: list[TrainExample], cfg: TrainConfig, epoch: int):
    order = list(range(len(examples)))
    random.Random(cfg.seed * 1000 + epoch).shuffle(order)
    for s in range(0, len(order) - cfg.batch_size + 1, cfg.batch_size):
        yield [examples[i] for i in order[s:s + cfg.batch_size]]


def _save_checkpoint(directory: Path, peft_model, opt, sched, state: TrainState) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp / "adapter"))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": state.step,
                "history": state.history, "temperature": state.temperature,
                "torch_rng": torch.get_rng_state()}, tmp / "trainer_state.pt")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)


def _load_checkpoint(directory: Path, peft_model, opt, sched, state: TrainState) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = directory / "adapter" / "adapter_model.safetensors"
    set_peft_model_state_dict(peft_model, load_file(str(weights)))
    saved = torch.load(directory / "trainer_state.pt", weights_only=False)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    state.step, state.history = saved["step"], saved["history"]
    state.temperature = saved.get("temperature", 0.0)
    torch.set_rng_state(saved["torch_rng"])
    logger.info("resumed from %s at step %d", directory, state.step)


def train(encoder, examples: list[TrainExample], cfg: TrainConfig, output_dir: Path, *,
          resume: bool = True, progress: bool = True) -> dict:
    """Fine-tune ``encoder`` in place and write the model directory to ``output_dir``."""
    from tqdm.auto import tqdm

    from ..config import TextSide

    if not examples:
        raise ConfigError("no training examples")
    loss_name = _pick_loss(cfg, examples)
    torch.manual_seed(cfg.seed)
    # Training lengths apply while training; the saved model keeps its inference lengths
    # (the paper trains at 128 tokens and evaluates with longer contexts).
    inference_config = encoder.config.replace(adapter="adapter")
    encoder.config = inference_config.replace(
        query=TextSide(cfg.query_max_length, encoder.config.query.top_k, encoder.config.query.prefix),
        document=TextSide(cfg.doc_max_length, encoder.config.document.top_k, encoder.config.document.prefix))
    peft_model = _apply_lora(encoder, cfg)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = len(examples) // (cfg.batch_size * cfg.grad_accum)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    if total <= 0:
        raise ConfigError(f"{len(examples)} examples make no full step of batch {cfg.batch_size} x "
                          f"accumulation {cfg.grad_accum}")
    warmup = max(1, math.ceil(cfg.warmup_fraction * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    flops_warmup = int(cfg.flops_warmup_fraction * total)
    state = TrainState()
    ckpt = Path(output_dir).with_name(Path(output_dir).name + ".checkpoint")
    if resume and (ckpt / "trainer_state.pt").is_file():
        _load_checkpoint(ckpt, peft_model, opt, sched, state)
    with_top_k = cfg.train_top_k
    temperature = cfg.temperature if cfg.temperature > 0 else state.temperature
    bar = tqdm(total=total, initial=state.step, desc=f"train ({loss_name})", unit="step", disable=not progress)
    start = time.time()
    micro = 0
    done = state.step * cfg.grad_accum  # micro-batches already consumed (for resume)
    epoch = 0
    while state.step < total:
        for batch in _batches(examples, cfg, epoch):
            if done > 0:
                done -= 1
                continue
            queries = [e.query for e in batch]
            docs = [d for e in batch for d in e.docs[: 1 + cfg.negatives]]
            q = encoder.pooled(queries, "query", apply_top_k=with_top_k)  # (B, V)
            d = encoder.pooled(docs, "document", apply_top_k=with_top_k)  # (B*n, V)
            if temperature <= 0:
                # auto: the spread of the initial in-batch scores, so that softmax starts unsaturated
                # whatever the representation's scale (SAE latents vs vocabulary logits differ by
                # orders of magnitude; the paper hand-picks 10 to 80). Fixed from then on.
                with torch.no_grad():
                    temperature = max(float((q @ d.t()).std()), 1e-3)
                logger.info("auto temperature: %.4g", temperature)
                state.temperature = temperature
            if loss_name == "kl":
                teacher = torch.tensor([list(e.scores[: 1 + cfg.negatives]) for e in batch], device=q.device)
                rank_loss = kl_distillation(candidate_scores(q, d), teacher, temperature)
            else:
                rank_loss = info_nce(q, d, temperature, cfg.in_batch_negatives)
            lq = flops_weight(state.step, cfg.flops_query, flops_warmup)
            ld = flops_weight(state.step, cfg.flops_doc, flops_warmup)
            fq, fd = flops(q), flops(d)
            loss = (rank_loss + lq * fq + ld * fd) / cfg.grad_accum
            loss.backward()
            micro += 1
            if micro % cfg.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            state.step += 1
            record = {"step": state.step, "loss": round(rank_loss.item(), 5), "flops_q": round(fq.item(), 3),
                      "flops_d": round(fd.item(), 3), "nnz_q": round(float((q > 0).sum(1).float().mean()), 1),
                      "nnz_d": round(float((d > 0).sum(1).float().mean()), 1)}
            state.history.append(record)
            bar.update(1)
            bar.set_postfix({k: v for k, v in record.items() if k != "step"})
            if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total:
                _save_checkpoint(ckpt, peft_model, opt, sched, state)
            if state.step >= total:
                break
        epoch += 1
    bar.close()
    peft_model.eval()
    report = {"loss": loss_name, "temperature": temperature, "steps": state.step, "examples": len(examples),
              "seconds_this_run": round(time.time() - start, 1), "config": asdict(cfg),
              "history": state.history}
    encoder.config = inference_config
    encoder.save_pretrained(output_dir, overwrite=True)
    (Path(output_dir) / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(ckpt, ignore_errors=True)
    return report
