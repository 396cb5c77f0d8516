"""splare-lucene train: fine-tune a SPLARE (or vocabulary SPLADE) model with LoRA."""

from __future__ import annotations

import argparse

from .common import add_runtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="SPLARE model to start from: its backbone + SAE (+ MNTP adapter); a "
                   "retrieval adapter it has is left out, so training starts from the untrained model "
                   "(default: 'default', the built-in model)")
    p.add_argument("--vocab-backbone", metavar="BACKBONE",
                   help="train the vocabulary baseline (SPLADE) on this backbone instead of --model")
    p.add_argument("--vocab-layer", type=int, help="layer of the vocabulary head (default: the last)")
    p.add_argument("--data", required=True,
                   help="BEIR folder (qrels/<split>.tsv, BM25 negatives mined), JSONL examples, or irds:<id>")
    p.add_argument("--split", default="train")
    p.add_argument("--output", required=True, help="model directory to write")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--loss", default="auto", choices=["auto", "kl", "infonce"])
    p.add_argument("--temperature", type=float, default=1.0, help="student temperature (KL) / InfoNCE")
    p.add_argument("--no-in-batch", action="store_true", help="InfoNCE without in-batch negatives")
    p.add_argument("--negatives", type=int, default=1, help="hard negatives per query")
    p.add_argument("--max-queries", type=int, help="use at most this many training queries")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.01, help="warm-up fraction of the steps")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--query-max-length", type=int, default=32)
    p.add_argument("--doc-max-length", type=int, default=128)
    p.add_argument("--flops-query", type=float, default=1e-4)
    p.add_argument("--flops-doc", type=float, default=1e-4)
    p.add_argument("--flops-warmup", type=float, default=0.3, help="FLOPS warm-up fraction of the steps")
    p.add_argument("--train-top-k", action="store_true",
                   help="apply the inference top-k (query/document) while training, not only at inference")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--save-every", type=int, default=50, help="checkpoint every N steps (resumable)")
    p.add_argument("--threads", type=int, default=1, help="BM25 mining threads")
    p.add_argument("--seed", type=int, default=0)
    add_runtime(p)


def run(args) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..train.data import load_examples
    from ..train.trainer import TrainConfig, train

    if args.model and args.vocab_backbone:
        raise ConfigError("give one of --model (SPLARE) or --vocab-backbone (SPLADE baseline), not both")
    if not args.vocab_backbone:
        args.model = args.model or "default"
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise ConfigError(f"model directory {out} already exists; pass --overwrite to replace it")
    cfg = TrainConfig(loss=args.loss, temperature=args.temperature, in_batch_negatives=not args.no_in_batch,
                      lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=tuple(t for t in args.target_modules.split(",") if t),
                      lr=args.lr, warmup_fraction=args.warmup, epochs=args.epochs, max_steps=args.max_steps,
                      batch_size=args.batch_size, grad_accum=args.grad_accum, negatives=args.negatives,
                      query_max_length=args.query_max_length, doc_max_length=args.doc_max_length,
                      flops_query=args.flops_query, flops_doc=args.flops_doc, flops_warmup_fraction=args.flops_warmup,
                      train_top_k=args.train_top_k, gradient_checkpointing=args.gradient_checkpointing, save_every=args.save_every, seed=args.seed)
    examples = load_examples(args.data, args.negatives, split=args.split, max_queries=args.max_queries,
                             seed=args.seed, threads=args.threads)
    from ..encoder import SplareEncoder

    if args.model:
        encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                                without_adapter=True)
    else:
        encoder = SplareEncoder.vocabulary(args.vocab_backbone, args.vocab_layer, device=args.device, dtype=args.dtype)
    report = train(encoder, examples, cfg, out, resume=not args.no_resume)
    last = report["history"][-1] if report["history"] else {}
    print(f"trained {report['steps']} steps ({report['loss']}); last: {last}; model written to {out}")
    return 0
