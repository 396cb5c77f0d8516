"""splare-lucene configure: a copy of a model directory with other inference settings."""

from __future__ import annotations

import argparse

from ..config import TEXT_NORMALIZATIONS
from .common import add_model, warn_query_top_k
from .options import non_negative_float, non_negative_int, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--output", required=True, help="model directory to create (a copy of --model)")
    p.add_argument("--query-top-k", type=non_negative_int,
                   help="latents kept per query (0: every non-zero one); e.g. the cell "
                   "benchmarks/top_k_grid.py chose on a dev split")
    p.add_argument("--doc-top-k", type=non_negative_int,
                   help="latents kept per document (0: every one). Like every document-side setting, on a "
                   "model with query idf weighting (the default) it needs the counts redone: add "
                   "--query-idf-corpus DOCS, or --query-idf-power 0 to drop the weighting")
    p.add_argument("--query-max-length", type=positive_int, help="tokens read per query")
    p.add_argument("--doc-max-length", type=positive_int, help="tokens read per document")
    p.add_argument("--quantization-scale", type=positive_float,
                   help="impact = round(weight x scale); indexes built at another scale do not mix")
    p.add_argument("--text-normalization", choices=TEXT_NORMALIZATIONS,
                   help="how queries and documents are rewritten before tokenization (lowercase: "
                   "case-insensitive). A trained adapter read with another value than it was trained "
                   "with sees other texts: measure it first (docs/training.md). On a model with query idf weighting (the "
                   "default), add --query-idf-corpus DOCS (recount) or --query-idf-power 0 (drop it)")
    p.add_argument("--query-idf-power", type=non_negative_float,
                   help="weight each query latent by idf ** POWER before quantization (0: off; the "
                   "default model: 1), idf counted over --query-idf-corpus (splare_lucene.latent_idf)")
    p.add_argument("--query-idf-corpus", metavar="DOCS",
                   help="documents to count latent document frequencies over (BEIR folder, JSONL or TSV), "
                   "encoded by the new model; e.g. paragraphs of its training data")
    p.add_argument("--query-idf-max-docs", type=positive_int, help="count over the first N documents only")
    p.add_argument("--device", default="auto", help="for counting --query-idf-corpus (default: auto)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="documents per forward pass when counting")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output model directory")


def run(args) -> int:
    from ..encoder import model_fingerprint
    from ..reconfigure import SETTINGS, model_width, reconfigure, setting

    changes = {key: getattr(args, key) for key in SETTINGS}
    out, old, new = reconfigure(args.model, args.output, overwrite=args.overwrite,
                                idf_corpus=args.query_idf_corpus, idf_max_docs=args.query_idf_max_docs,
                                device=args.device, batch_size=args.batch_size, **changes)
    if args.query_top_k is not None:  # as `assemble` does: 0 or > 1,024 query terms is Lucene's limit
        warn_query_top_k(args.query_top_k, model_width(out, new))
    diff = [f"{key} {setting(old, key)} -> {setting(new, key)}" for key in SETTINGS
            if setting(old, key) != setting(new, key)]
    if args.query_idf_corpus:
        from ..latent_idf import LatentDocumentFrequency

        diff.append(f"latent document frequencies counted over {LatentDocumentFrequency.load(out).documents} "
                    f"documents of {args.query_idf_corpus}")
    print(f"model directory written to {out} ({'; '.join(diff)}); fingerprint {model_fingerprint(out, new)}")
    return 0
