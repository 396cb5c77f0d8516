"""splare-lucene encode: corpus -> quantized JsonVectorCollection shards."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime, check_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--corpus", required=True, help="BEIR folder, .jsonl(.gz), .tsv, or irds:<id>")
    p.add_argument("--output", required=True, help="directory for the .jsonl.gz shards")
    p.add_argument("--shards", type=int, default=1, help="number of shard files (= indexing threads)")
    p.add_argument("--allow-empty", action="store_true", help="skip documents with empty text")
    p.add_argument("--overwrite", action="store_true")
    add_runtime(p)


def run(args) -> int:
    from ..encoder import SplareEncoder
    from ..pipeline import encode_corpus

    check_output(args.output, args.overwrite, "output directory")
    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    summary = encode_corpus(encoder, args.corpus, args.output, shards=args.shards,
                            batch_size=args.batch_size, allow_empty=args.allow_empty,
                            model_name=args.model)
    print(summary.describe())
    return 0
