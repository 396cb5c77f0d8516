"""Bidirectional-attention adaptation by masked next-token prediction (MNTP, LLM2Vec; the paper
runs it before retrieval training).

A fraction of the tokens is replaced by a mask token, attention is made bidirectional, and the
token at a masked position ``i`` is predicted from the output at position ``i - 1`` through the
model's own final norm and LM head. LoRA is applied only to blocks ``0..L`` (the blocks a SPLARE
model at layer L keeps), so the resulting adapter loads onto the cut model unchanged.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F

from ..backbone import (LoadedBackbone, bidirectional_mask, is_encoder_backbone, last_layer, load_backbone,
                        quiet_peft_wrapping, tokenize)
from ..errors import ConfigError

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


def adapt_bidirectional(backbone_ref: str, layer: int, texts: Iterable[str], cfg: MNTPConfig, *,
                        device: str = "cpu", dtype: str = "float32", base_dir: Path | None = None,
                        progress: bool = True):
    """Train an MNTP LoRA adapter on blocks 0..layer; returns (peft model, report).

    Raises ConfigError for a bidirectional encoder backbone (BERT, XLM-R): MNTP turns a causal
    decoder into a bidirectional one, which an encoder already is.
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
    history, start = [], time.time()
    bb.model.train()
    for step in tqdm(range(cfg.steps), desc="mntp", disable=not progress):
        batch = [pool[rng.randrange(len(pool))] for _ in range(cfg.batch_size)]
        ids, attn, maskable = tokenize(bb, batch, cfg.max_length, bb.model.device)
        loss = mntp_loss(bb, ids, attn, maskable, mask_id, cfg.mask_ratio, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append(round(loss.item(), 4))
    report = {"config": asdict(cfg), "layer": layer, "mask_token_id": mask_id, "loss_history": history,
              "seconds": round(time.time() - start, 1)}
    return bb.model, report

