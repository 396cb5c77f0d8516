"""Bidirectional-attention adaptation by masked next-token prediction (MNTP, LLM2Vec; the paper
runs it before retrieval training).

A fraction of the tokens is replaced by a mask token, attention is made bidirectional, and the
token at a masked position ``i`` is predicted from the output at position ``i - 1`` through the
model's own final norm and LM head. LoRA is applied only to blocks ``0..L`` (the blocks a SPLARE
model at layer L keeps), so the resulting adapter loads onto the cut model unchanged.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F

from ..backbone import (LoadedBackbone, bidirectional_mask, is_encoder_backbone, last_layer, load_backbone,
                        quiet_peft_wrapping, tokenize)
from ..errors import CheckpointError, ConfigError, TrainingError
from ..outputs import MNTP_STATE_FILE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MNTPConfig:
    steps: int = 1000
    batch_size: int = 8
    max_length: int = 128
    mask_ratio: float = 0.2
    lr: float = 5e-5
    lora_rank: int = 16
    lora_alpha: int = 32
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    seed: int = 0


def mask_token_id(tokenizer) -> int:
    """The tokenizer's mask token, else an unused-looking fallback (LLM2Vec uses '_' for Llama)."""
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id
    ids = tokenizer.convert_tokens_to_ids(["_"])
    if ids and ids[0] is not None and ids[0] != tokenizer.unk_token_id:
        return ids[0]
    return tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id


def mntp_loss(backbone: LoadedBackbone, input_ids, attention_mask, maskable, mask_id: int,
              ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Mask ``ratio`` of the ``maskable`` tokens (never position 0) and predict them from i-1."""
    chosen = (torch.rand(input_ids.shape, generator=generator) < ratio).to(input_ids.device) & maskable
    chosen[:, 0] = False
    if not chosen.any():
        return torch.zeros((), device=input_ids.device, requires_grad=True)
    masked = input_ids.masked_fill(chosen, mask_id)
    mask4d = bidirectional_mask(attention_mask, backbone.model.dtype)
    hidden = backbone.model(input_ids=masked, attention_mask=mask4d, use_cache=False).last_hidden_state
    prev = hidden[:, :-1][chosen[:, 1:]]  # (n, d): outputs one position before each masked token
    logits = backbone.lm_head(backbone.final_norm(prev))  # (n, vocab)
    if backbone.logit_softcap:  # Gemma 2's CausalLM softcaps its logits; predict with the same ones
        logits = backbone.logit_softcap * torch.tanh(logits / backbone.logit_softcap)
    return F.cross_entropy(logits.float(), input_ids[:, 1:][chosen[:, 1:]])


def check_adaptable(backbone_ref: str, base_dir: Path | None = None) -> None:
    """Raise ConfigError unless ``backbone_ref`` is a causal decoder (what MNTP adapts).

    Reads only the backbone's config (``is_encoder_backbone``), so commands can check before
    doing anything else.
    """
    if is_encoder_backbone(backbone_ref, base_dir):
        raise ConfigError(f"backbone {backbone_ref} is a bidirectional encoder: `adapt` (masked next-token "
                          "prediction) only makes causal decoders bidirectional, and an encoder already is. "
                          "Skip `adapt` and train the model directly (`splare-lucene train --model ...`)")


STATE_FILE = MNTP_STATE_FILE


def _save_checkpoint(directory: Path, peft_model, opt, state: dict) -> None:
    """Write the MNTP adapter and the loop state to ``directory`` atomically (a fresh temporary
    directory renamed into place): ``adapter/`` (safetensors) and ``mntp_state.pt``, which holds
    only tensors, numbers, strings and plain containers (the optimizer ``state_dict``, the step,
    the loss history, the seconds so far, the settings, the number of texts drawn from, the mask
    generator's state as a uint8 tensor, Python's ``random`` state of the batch draw), so
    ``_load_checkpoint`` reads it with ``torch.load(weights_only=True)``."""
    from .checkpoint import write_checkpoint

    write_checkpoint(directory, peft_model, STATE_FILE, {**state, "optimizer": opt.state_dict()})


def _load_checkpoint(directory: Path, peft_model, opt, cfg: MNTPConfig, n_texts: int) -> dict:
    """The loop state of ``_save_checkpoint``, with the adapter and optimizer loaded in place.

    No code from the checkpoint runs (safetensors, ``torch.load(weights_only=True)``).

    Raises:
        CheckpointError: a file is missing, corrupt or foreign, or the run was started with other
            settings (all but ``steps``) or another number of texts; the message says how to restart.
    """
    from peft import set_peft_model_state_dict

    from .checkpoint import read_checkpoint

    restart = f"delete {directory} to restart the adaptation from step 0 (or pass --no-resume)"
    keys = {"optimizer", "step", "history", "config", "n_texts", "mask_generator", "draw_rng", "seconds"}
    adapter, saved = read_checkpoint(directory, STATE_FILE, keys, "an adaptation state", restart)
    now = {k: v for k, v in asdict(cfg).items() if k != "steps"}
    then = {k: v for k, v in saved["config"].items() if k != "steps"}
    then["target_modules"] = tuple(then.get("target_modules", ()))
    changed = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
    if changed:
        was = ", ".join(f"{k} {then.get(k)!r} (now {now.get(k)!r})" for k in changed)
        raise CheckpointError(f"{directory} was written by an adaptation with other settings: {was}; resume with "
                              f"the same settings, or {restart}")
    if saved["n_texts"] != n_texts:
        raise CheckpointError(f"{directory} was written by an adaptation drawing from {saved['n_texts']:,} texts, "
                              f"this one has {n_texts:,} (another --corpus?); resume with the same corpus, "
                              f"or {restart}")
    if saved["step"] > cfg.steps:
        raise CheckpointError(f"{directory} is at step {saved['step']}, past --steps {cfg.steps}; give --steps "
                              f"{saved['step']} or more, or {restart}")
    set_peft_model_state_dict(peft_model, adapter)
    opt.load_state_dict(saved["optimizer"])
    logger.info("resumed from %s at step %d", directory, saved["step"])
    return saved


def adapt_bidirectional(backbone_ref: str, layer: int, texts: Iterable[str], cfg: MNTPConfig, *,
                        device: str = "cpu", dtype: str = "float32", base_dir: Path | None = None,
                        progress: bool = True, checkpoint: Path | None = None, save_every: int = 0):
    """Train an MNTP LoRA adapter on blocks 0..layer; returns (peft model, report).

    With ``checkpoint`` and ``save_every`` > 0 the adapter, optimizer and loop state are written
    to ``checkpoint`` every ``save_every`` steps (not after the last: the caller writes the model,
    then removes the checkpoint); an existing checkpoint there is resumed, and the resumed run
    draws the same batches and masks as an uninterrupted one. ``report["seconds"]`` counts the
    runs a resume continues (up to their checkpoint); ``seconds_this_run`` this call alone.

    Raises ConfigError for a bidirectional encoder backbone (BERT, XLM-R): MNTP turns a causal
    decoder into a bidirectional one, which an encoder already is. CheckpointError for a
    checkpoint that cannot be resumed (see ``_load_checkpoint``). TrainingError when the loss
    turns non-finite (the update is applied, so nothing is saved; the last checkpoint is kept).
    """
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    check_adaptable(backbone_ref, base_dir)
    torch.manual_seed(cfg.seed)
    bb = load_backbone(backbone_ref, last_layer(backbone_ref, base_dir), dtype=dtype, device=device,
                       base_dir=base_dir, with_lm_head=True)
    present = {name.split(".")[-1] for name, _ in bb.model.named_modules()}
    names = "|".join(t for t in cfg.target_modules if t in present)
    # A regex instead of layers_to_transform: peft's layer pattern needs a prefix before
    # "layers.N", which a base model's module names lack (peft 0.21).
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, bias="none",
                      target_modules=rf"(.*\.)?layers\.({'|'.join(map(str, range(layer + 1)))})\..*\.({names})")
    with quiet_peft_wrapping():
        bb.model = get_peft_model(bb.model, lora)
    for module in (bb.lm_head, bb.final_norm):
        for p in module.parameters():
            p.requires_grad_(False)
    params = [p for p in bb.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    mask_id = mask_token_id(bb.tokenizer)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    pool = list(texts)
    if not pool:
        raise ValueError("no texts for MNTP adaptation")
    history, first, seconds_before = [], 0, 0.0
    if checkpoint is not None and (checkpoint / STATE_FILE).is_file():
        saved = _load_checkpoint(checkpoint, bb.model, opt, cfg, len(pool))
        history, first, seconds_before = list(saved["history"]), saved["step"], float(saved["seconds"])
        gen.set_state(saved["mask_generator"])
        rng.setstate(saved["draw_rng"])
    start = time.time()
    bb.model.train()
    for step in tqdm(range(first, cfg.steps), desc="mntp", disable=not progress, initial=first, total=cfg.steps):
        batch = [pool[rng.randrange(len(pool))] for _ in range(cfg.batch_size)]
        ids, attn, maskable = tokenize(bb, batch, cfg.max_length, bb.model.device)
        loss = mntp_loss(bb, ids, attn, maskable, mask_id, cfg.mask_ratio, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            kept = (f"the checkpoint {checkpoint} is kept and a rerun resumes from it"
                    if checkpoint is not None and (checkpoint / STATE_FILE).is_file() else "no checkpoint was written")
            raise TrainingError(f"the MNTP loss is {value} at step {step + 1}, so the update just applied is not "
                                f"finite and the model is not written; {kept}. Lower --lr")
        history.append(round(value, 4))
        done = step + 1
        if checkpoint is not None and save_every and done % save_every == 0 and done < cfg.steps:
            _save_checkpoint(checkpoint, bb.model, opt, {
                "step": done, "history": history, "config": asdict(cfg), "n_texts": len(pool),
                "mask_generator": gen.get_state(), "draw_rng": rng.getstate(),
                "seconds": seconds_before + time.time() - start})
    this_run = time.time() - start
    report = {"config": asdict(cfg), "layer": layer, "mask_token_id": mask_id, "loss_history": history,
              "seconds": round(seconds_before + this_run, 1), "seconds_this_run": round(this_run, 1)}
    return bb.model, report
