"""splare-lucene adapt: bidirectional-attention adaptation (MNTP) of a SPLARE model's backbone."""

from __future__ import annotations

import argparse

from .common import add_runtime, check_output
from .options import non_negative_int, positive_float, positive_int, probability, seed_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="SPLARE model directory to adapt")
    p.add_argument("--corpus", action="append", required=True,
                   help="text source (BEIR folder, .jsonl, .tsv); repeatable; texts are drawn at random from "
                        "the first 200,000")
    p.add_argument("--output", required=True, help="new model directory (bidirectional, with the MNTP adapter)")
    p.add_argument("--steps", type=positive_int, default=1000,
                   help="optimizer steps of --batch-size texts (the paper: 10k on MS MARCO). Each runs the whole "
                        "backbone and its LM head: about 8.5 s at 16 x 64 tokens on 2 CPU cores (Gemma 3 270M)")
    p.add_argument("--mask-ratio", type=probability, default=0.2, help="share of tokens masked (the paper: 0.2)")
    p.add_argument("--max-length", type=positive_int, default=128, help="tokens per text (longer ones are cut)")
    p.add_argument("--lr", type=positive_float, default=5e-5, help="AdamW learning rate of the LoRA weights")
    p.add_argument("--lora-rank", type=positive_int, default=16, help="LoRA rank on blocks 0..L (alpha 32)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--save-every", type=non_negative_int, default=50,
                   help="write <output>.checkpoint every N steps (0: never); a rerun of the same command resumes "
                        "from it, and it is removed once the model is written")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint and start from step 0")
    p.add_argument("--overwrite", action="store_true")
    add_runtime(p)


def run(args) -> int:
    import itertools
    import json
    import shutil

    from ..backbone import pick_device
    from ..config import SplareConfig
    from ..corpus import read_documents
    from ..encoder import resolve_model_dir
    from ..errors import ConfigError
    from ..train.mntp import MNTPConfig, adapt_bidirectional, check_adaptable

    source = resolve_model_dir(args.model)
    config = SplareConfig.load(source)
    if config.adapter or config.mntp_adapter:
        raise ConfigError(f"{args.model} already has adapters; adapt a model made by `assemble`")
    check_adaptable(config.backbone, source)  # before --overwrite removes anything
    from ..outputs import check_not_input, check_replaceable, staged_dir

    check_not_input(args.output, {"--model": source, "--corpus": args.corpus})
    out = check_output(args.output, args.overwrite, "model directory", kinds=["model"], remove=False)
    ckpt = out.with_name(out.name + ".checkpoint")
    check_replaceable(ckpt, ["checkpoint"], what="checkpoint directory")  # before any work
    if args.no_resume and ckpt.exists():
        shutil.rmtree(ckpt)
    cfg = MNTPConfig(steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                     mask_ratio=args.mask_ratio, lr=args.lr, lora_rank=args.lora_rank, seed=args.seed)
    # normalised as the model will see them at encoding time (its text_normalization)
    texts = (config.normalize(d.text)
             for d in itertools.chain.from_iterable(read_documents(c, allow_empty=True) for c in args.corpus))
    texts = itertools.islice(texts, 200_000)  # a bounded sampling pool
    peft_model, report = adapt_bidirectional(config.backbone, config.layer, texts, cfg, base_dir=source,
                                             device=pick_device(args.device), dtype=args.dtype,
                                             checkpoint=ckpt, save_every=args.save_every)
    with staged_dir(out, ["model"], what="model directory") as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        peft_model.save_pretrained(str(tmp / "mntp_adapter"))
        config.replace(bidirectional=True, mntp_adapter="mntp_adapter").save(tmp)
        (tmp / "mntp_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(ckpt, ignore_errors=True)
    print(f"adapted model written to {out}; MNTP loss {report['loss_history'][0]} -> {report['loss_history'][-1]}")
    return 0
