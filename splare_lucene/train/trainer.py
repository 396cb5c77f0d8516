"""Retrieval fine-tuning: LoRA on the backbone (SAE or LM head frozen), KL distillation or
InfoNCE, FLOPS regularisation on queries and documents, resumable checkpoints.

Named recipes (``RECIPES``, ``recipe_config``) bundle settings: ``default`` is the toolkit's
historical defaults, ``paper`` the SPLARE paper's training set-up. Scores, losses and FLOPS are
computed in float32 whatever the backbone's dtype.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from ..errors import ConfigError
from .data import TrainExample
from .losses import candidate_scores, flops, flops_weight, info_nce, kl_distillation

logger = logging.getLogger(__name__)

LOSSES = ("auto", "kl", "infonce")
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# BERT/XLM-R name their linear layers query/key/value (attention) and dense (attention output,
# intermediate, output): used when the default decoder names are absent from the backbone.
ENCODER_TARGETS = ("query", "key", "value", "dense")


# Student temperatures per SAE family (SAEConfig.source) from the paper: SAE latents give much
# larger dot products than vocabulary logits, and a wrong temperature diverges.
FAMILY_TEMPERATURES = {"llamascope": 80.0, "gemmascope": 50.0, "gemmascope2": 50.0}
VOCAB_TEMPERATURE = 10.0  # the paper's vocabulary (SPLADE-Llama) baseline


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "auto"  # auto: KL when every example has teacher scores, else InfoNCE
    # student temperature (KL) / InfoNCE temperature. None: from the head (see family_temperature);
    # 0: auto, the spread of the first batch's in-batch scores; > 0: this value.
    temperature: float | None = None
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
            raise ConfigError("batch_size and grad_accum must be >= 1 and negatives >= 0; got "
                              f"{self.batch_size}, {self.grad_accum}, {self.negatives}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature must be > 0, 0 (auto) or None (from the SAE family); "
                              f"got {self.temperature}")

    @property
    def effective_batch_size(self) -> int:
        """Queries per optimizer step: micro-batch x gradient accumulation."""
        return self.batch_size * self.grad_accum


# Each recipe lists only what it changes from TrainConfig's defaults; "effective_batch_size"
# (queries per optimizer step) is turned into grad_accum = effective / batch_size.
RECIPES: dict[str, dict] = {
    # the toolkit's defaults (what `train` did before recipes existed); the micro-batch of 16 was
    # the CLI's --batch-size default, which TrainConfig's 8 never applied to
    "default": {"batch_size": 16},
    # Formal et al., ICLR 2026, section "Training" (see docs/training.md for each value's source).
    # lora_alpha is not given in the paper: 2 x rank, the toolkit's usual ratio (16/32).
    "paper": {"loss": "kl", "lora_rank": 64, "lora_alpha": 128, "lr": 5e-5, "warmup_fraction": 0.01,
              "epochs": 1, "max_steps": 0, "negatives": 8, "batch_size": 8, "effective_batch_size": 128,
              "query_max_length": 128, "doc_max_length": 128, "flops_query": 1e-4, "flops_doc": 1e-4},
}


def recipe_config(recipe: str = "default", **overrides) -> TrainConfig:
    """The TrainConfig of ``recipe`` with ``overrides`` (explicit settings) applied on top.

    Precedence: overrides > recipe > TrainConfig defaults. ``effective_batch_size`` (queries per
    optimizer step) may come from the recipe or the overrides; it sets ``grad_accum`` to
    ``effective_batch_size / batch_size`` unless ``grad_accum`` is given explicitly.

    Raises ConfigError for an unknown recipe or setting, an effective batch that ``batch_size``
    does not divide, or an explicit ``grad_accum`` that contradicts an explicit effective batch.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"recipe must be one of {sorted(RECIPES)}; got {recipe!r}")
    known = {f.name for f in fields(TrainConfig)} | {"effective_batch_size"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
    values = {**RECIPES[recipe], **overrides}
    effective = values.pop("effective_batch_size", None)
    if effective is not None:
        micro = values.get("batch_size", TrainConfig.batch_size)
        if "grad_accum" in overrides:
            if "effective_batch_size" in overrides and micro * overrides["grad_accum"] != effective:
                raise ConfigError(f"--effective-batch-size {effective} != --batch-size {micro} x "
                                  f"--grad-accum {overrides['grad_accum']}; give one of the last two")
            logger.info("explicit grad_accum %d: effective batch %d x %d = %d (recipe %s asked %d)",
                        overrides["grad_accum"], micro, overrides["grad_accum"],
                        micro * overrides["grad_accum"], recipe, effective)
        else:
            if effective < 1 or effective % micro:
                divisors = [n for n in (1, 2, 4, 8, 16, 32) if effective >= 1 and effective % n == 0]
                raise ConfigError(f"the effective batch {effective} is not a multiple of the micro-batch "
                                  f"{micro}; pass a --batch-size that divides it (e.g. {divisors})")
            values["grad_accum"] = effective // micro
    return TrainConfig(**values)


def family_temperature(encoder) -> tuple[float, str]:
    """The paper's student temperature for ``encoder``'s head, and where it comes from.

    Vocabulary head: 10. SAE head: by ``SAEConfig.source`` (80 for Llama Scope, 50 for Gemma Scope
    and Gemma Scope 2). Any other SAE (SAELens, sparsify, the toolkit's own) returns (0.0, ...):
    the automatic temperature, chosen from the first batch's score spread.
    """
    if encoder.config.representation == "vocab":
        return VOCAB_TEMPERATURE, "paper: vocabulary head"
    source = encoder.head.config.source
    if source in FAMILY_TEMPERATURES:
        return FAMILY_TEMPERATURES[source], f"paper: {source} SAE"
    return 0.0, f"auto: no paper temperature for {source!r} SAEs"


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
    if not targets and tuple(cfg.target_modules) == DEFAULT_TARGETS:
        targets = [t for t in ENCODER_TARGETS if t in present]
        if targets:
            logger.info("LoRA targets: %s (encoder layout; the decoder defaults %s are absent)",
                        targets, list(DEFAULT_TARGETS))
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
          resume: bool = True, progress: bool = True, recipe: str | None = None) -> dict:
    """Fine-tune ``encoder`` in place and write the model directory to ``output_dir``.

    Each optimizer step consumes ``cfg.grad_accum`` micro-batches of ``cfg.batch_size`` queries
    with ``1 + cfg.negatives`` candidates each. In-batch negatives (InfoNCE) and the FLOPS means
    are per micro-batch. ``recipe`` is only recorded in the report. Returns the report written to
    ``output_dir/train_report.json``. Raises ConfigError for an impossible set-up (no examples,
    fewer examples than one step, KL without teacher scores).
    """
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
                          f"accumulation {cfg.grad_accum}; use more data or a smaller --batch-size, "
                          "--grad-accum or --effective-batch-size")
    warmup = max(1, math.ceil(cfg.warmup_fraction * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    flops_warmup = int(cfg.flops_warmup_fraction * total)
    state = TrainState()
    ckpt = Path(output_dir).with_name(Path(output_dir).name + ".checkpoint")
    if resume and (ckpt / "trainer_state.pt").is_file():
        _load_checkpoint(ckpt, peft_model, opt, sched, state)
    with_top_k = cfg.train_top_k
    if cfg.temperature is None:
        family, temperature_source = family_temperature(encoder)
        if family > 0:
            logger.info("student temperature %g (%s); --temperature overrides it", family, temperature_source)
        else:
            logger.warning("student temperature: %s (the paper: 80 Llama Scope, 50 Gemma Scope, 10 "
                           "vocabulary); using the automatic one; pass --temperature to fix it",
                           temperature_source)
    elif cfg.temperature > 0:
        family, temperature_source = cfg.temperature, "given"
    else:
        family, temperature_source = 0.0, "auto: asked for"
    temperature = family if family > 0 else state.temperature
    logger.info("training %s: micro-batch %d queries x %d candidates, %d micro-batches per step "
                "(effective batch %d), %d steps, backbone %s on %s; scores and losses in float32",
                loss_name, cfg.batch_size, 1 + cfg.negatives, cfg.grad_accum, cfg.effective_batch_size,
                total, str(encoder.backbone.model.dtype).removeprefix("torch."), encoder.device)
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
            # float32 from here on whatever the backbone dtype: bfloat16 keeps 8 significant bits,
            # so scores of ~2000 come out in steps of 8 (errors of ~7 measured on CPU), as large
            # as the score gaps the losses' softmax (temperature 50-80) has to resolve
            q = encoder.pooled(queries, "query", apply_top_k=with_top_k).float()  # (B, V)
            d = encoder.pooled(docs, "document", apply_top_k=with_top_k).float()  # (B*n, V)
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
    # the resolved values: the temperature actually used and the effective batch
    resolved = asdict(replace(cfg, temperature=temperature))
    report = {"loss": loss_name, "temperature": temperature, "temperature_source": temperature_source,
              "recipe": recipe, "effective_batch_size": cfg.effective_batch_size,
              "dtype": str(encoder.backbone.model.dtype).removeprefix("torch."), "device": str(encoder.device),
              "steps": state.step, "examples": len(examples),
              "seconds_this_run": round(time.time() - start, 1), "config": resolved,
              "history": state.history}
    encoder.config = inference_config
    encoder.save_pretrained(output_dir, overwrite=True)
    (Path(output_dir) / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(ckpt, ignore_errors=True)
    return report
