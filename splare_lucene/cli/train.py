"""splare-lucene train: fine-tune a SPLARE (or vocabulary SPLADE) model with LoRA.

Training settings come from a named recipe (``--recipe default|paper``); a flag given on the
command line overrides the recipe's value. Every such flag therefore defaults to None here, and
the recipe (then TrainConfig's defaults) fills in what was not given.
"""

from __future__ import annotations

import argparse

from ..config import TEXT_NORMALIZATIONS
from .common import add_runtime
from .options import (dropout, fraction, non_negative_float, non_negative_int, positive_float, positive_int,
                      seed_int, thread_count)

# --flag dest -> TrainConfig field, for the flags a recipe may set
CONFIG_FLAGS = {
    "loss": "loss", "temperature": "temperature", "negatives": "negatives", "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout", "lr": "lr", "warmup": "warmup_fraction",
    "epochs": "epochs", "max_steps": "max_steps", "batch_size": "batch_size", "grad_accum": "grad_accum",
    "effective_batch_size": "effective_batch_size", "query_max_length": "query_max_length",
    "doc_max_length": "doc_max_length", "flops_query": "flops_query", "flops_doc": "flops_doc",
    "flops_warmup": "flops_warmup_fraction", "train_top_k": "train_top_k",
    "case_augmentation": "case_augmentation",
    "gradient_checkpointing": "gradient_checkpointing", "save_every": "save_every", "seed": "seed",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="SPLARE model to start from: its backbone + SAE (+ MNTP adapter); a "
                   "retrieval adapter it has is left out, so training starts from the untrained model "
                   "(default: 'default', the built-in model)")
    p.add_argument("--vocab-backbone", metavar="BACKBONE",
                   help="train the vocabulary baseline (SPLADE) on this backbone instead of --model")
    p.add_argument("--vocab-layer", type=non_negative_int, help="layer of the vocabulary head (default: the last)")
    p.add_argument("--data", required=True,
                   help="BEIR folder (qrels/<split>.tsv, BM25 negatives mined), JSONL examples, or irds:<id>")
    p.add_argument("--split", default="train")
    p.add_argument("--text-normalization", choices=TEXT_NORMALIZATIONS,
                   help="how every text is rewritten before tokenization, in training and in the trained "
                   "model (its text_normalization, saved in its config): none = as given, lowercase = "
                   "str.lower(), which makes the model case-insensitive (docs/pipeline.md). Default: the "
                   "--model's own value ('lowercase' for the built-in model; 'none' for --vocab-backbone and for "
                   "a model from assemble). --case-augmentation needs none: train with none, then read the "
                   "model lower-cased with splare-lucene configure --text-normalization lowercase")
    p.add_argument("--output", required=True, help="model directory to write")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--recipe", default="default", choices=["default", "paper"],
                   help="named settings; the flags below override them. paper: KL, LoRA rank 64, lr 5e-5, "
                   "warm-up 1%%, FLOPS 1e-4 each, 128 queries x 8 negatives per step (micro-batch 8 x "
                   "16 accumulation), length 128, 1 epoch. default: the toolkit's defaults (shown below)")
    g = p.add_argument_group("training settings (default: the recipe's value)")
    g.add_argument("--loss", choices=["auto", "kl", "infonce"], help="auto: KL when the data has teacher "
                   "scores, else InfoNCE (default recipe: auto; paper: kl)")
    g.add_argument("--temperature", type=non_negative_float,
                   help="student temperature (KL) / InfoNCE temperature; 0: automatic, from the first "
                   "batch's score spread. Default: the paper's for the head: 80 Llama Scope, 50 Gemma "
                   "Scope (1 and 2), 10 vocabulary head; automatic (logged) for other SAEs")
    g.add_argument("--no-in-batch", action="store_true", help="InfoNCE without in-batch negatives")
    g.add_argument("--negatives", type=non_negative_int, help="hard negatives per query (default 1; paper 8)")
    g.add_argument("--max-queries", type=positive_int, help="use at most this many training queries")
    g.add_argument("--lora-rank", type=positive_int, help="default 16; paper 64")
    g.add_argument("--lora-alpha", type=positive_int, help="default 32; paper recipe 128 (2 x rank; the paper gives none)")
    g.add_argument("--lora-dropout", type=dropout, help="default 0")
    g.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    g.add_argument("--lr", type=positive_float, help="default 5e-5 (as the paper)")
    g.add_argument("--warmup", type=fraction, help="warm-up fraction of the steps (default 0.01, as the paper)")
    g.add_argument("--epochs", type=positive_int, help="default 1 (as the paper)")
    g.add_argument("--max-steps", type=non_negative_int, help="stop after this many optimizer steps (default 0: the epochs)")
    g.add_argument("--grad-accum", type=positive_int,
                   help="micro-batches per optimizer step (default 1; paper: --effective-batch-size / --batch-size)")
    g.add_argument("--effective-batch-size", type=positive_int,
                   help="queries per optimizer step; sets --grad-accum to this / --batch-size (paper 128)")
    g.add_argument("--query-max-length", type=positive_int, help="training query length in tokens (default 32; paper 128)")
    g.add_argument("--doc-max-length", type=positive_int, help="training document length in tokens (default 128)")
    g.add_argument("--flops-query", type=non_negative_float, help="default 1e-4 (as the paper)")
    g.add_argument("--flops-doc", type=non_negative_float, help="default 1e-4 (as the paper)")
    g.add_argument("--flops-warmup", type=fraction, help="FLOPS warm-up fraction of the steps (default 0.3)")
    g.add_argument("--train-top-k", action="store_true", default=None,
                   help="apply the inference top-k (query/document) while training, not only at inference")
    g.add_argument("--case-augmentation", type=fraction, metavar="P",
                   help="re-case each training text (query, positive, negatives) with probability P into "
                   "lower, UPPER or Title case (uniform), so that the model learns to read capital letters "
                   "(docs/training.md); needs --text-normalization none. Default 0: off")
    g.add_argument("--gradient-checkpointing", action="store_true", default=None)
    p.add_argument("--mixed-precision", choices=["no", "bf16", "fp16"],
                   help="autocast the backbone's forward (accelerate); the SAE head, scores and losses "
                   "stay float32. Default: `accelerate launch --mixed_precision`, else no")
    g.add_argument("--save-every", type=non_negative_int, help="checkpoint every N steps, resumable (default 50)")
    g.add_argument("--seed", type=seed_int, help="default 0")
    p.add_argument("--threads", type=thread_count, default=1, help="BM25 mining threads")
    add_runtime(p, batch_size_default=None,
                batch_size_help="queries per micro-batch and process, each with 1 + --negatives documents "
                "(default 16; paper recipe 8: lower it if a step does not fit in memory). Under "
                "`accelerate launch`/`torchrun` with N processes the global micro-batch is N x this")


def config_overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig settings given explicitly on the command line (flags left at None are not)."""
    overrides = {field: getattr(args, dest) for dest, field in CONFIG_FLAGS.items()
                 if getattr(args, dest, None) is not None}
    if args.no_in_batch:
        overrides["in_batch_negatives"] = False
    overrides["target_modules"] = tuple(t for t in args.target_modules.split(",") if t)
    return overrides


def run(args) -> int:
    """Train. Under ``accelerate launch`` or ``torchrun`` every process runs this: the Accelerator
    is made first (it joins the process group and picks this process's GPU), BM25 negatives are
    mined by the main process first (the others then read its cache), and only the main process
    writes checkpoints and the model."""
    import logging
    from pathlib import Path

    from ..backbone import pick_device
    from ..errors import ConfigError
    from ..train.data import load_examples
    from ..train.trainer import make_accelerator, recipe_config, train

    if args.model and args.vocab_backbone:
        raise ConfigError("give one of --model (SPLARE) or --vocab-backbone (SPLADE baseline), not both")
    if not args.vocab_backbone:
        args.model = args.model or "default"
    from ..outputs import check_not_input, check_replaceable
    from .common import check_output

    out = Path(args.output)
    ckpt = out.with_name(out.name + ".checkpoint")  # train()'s resumable checkpoint, beside the output
    inputs = {"--model": args.model, "--data": args.data, "--vocab-backbone": args.vocab_backbone}
    check_not_input(out, inputs)
    check_not_input(ckpt, inputs, what="checkpoint directory")
    # --overwrite replaces only a model directory; the model is written once training is done
    check_output(out, args.overwrite, "model directory", kinds=["model"], remove=False)
    check_replaceable(ckpt, ["checkpoint"], what="checkpoint directory")
    device = pick_device(args.device)
    accelerator = make_accelerator(device, args.mixed_precision)
    cfg = recipe_config(args.recipe, num_processes=accelerator.num_processes, **config_overrides(args))
    log = logging.getLogger(__name__)
    if accelerator.is_main_process:
        log.info("recipe %s: %s", args.recipe, cfg)
    if cfg.case_augmentation:
        # train() refuses it too, but only after the (minutes of) negative mining
        from ..config import SplareConfig
        from ..encoder import resolve_model_dir
        from ..train.augment import check_normalization

        normalization = args.text_normalization or (
            SplareConfig.load(resolve_model_dir(args.model)).text_normalization if args.model else "none")
        check_normalization(cfg.case_augmentation, normalization)
    with accelerator.main_process_first():
        examples = load_examples(args.data, cfg.negatives, split=args.split, max_queries=args.max_queries,
                                 seed=cfg.seed, threads=args.threads)
    from ..encoder import SplareEncoder

    # "cuda" is this process's own GPU: the Accelerator made it the current device
    if args.model:
        encoder = SplareEncoder.from_pretrained(args.model, device=device, dtype=args.dtype,
                                                without_adapter=True)
    else:
        encoder = SplareEncoder.vocabulary(args.vocab_backbone, args.vocab_layer, device=device, dtype=args.dtype)
    if args.text_normalization is not None and args.text_normalization != encoder.config.text_normalization:
        log.info("text normalization %s (the starting model's: %s)", args.text_normalization,
                 encoder.config.text_normalization)
        # train() trains with encoder.config's value and saves it in the new model
        encoder.config = encoder.config.replace(text_normalization=args.text_normalization)
    report = train(encoder, examples, cfg, out, resume=not args.no_resume, recipe=args.recipe,
                   accelerator=accelerator)
    last = report["history"][-1] if report["history"] else {}
    if accelerator.is_main_process:
        print(f"trained {report['steps']} steps ({report['loss']}) on {report['processes']} process(es); "
              f"last: {last}; model written to {out}")
    return 0
