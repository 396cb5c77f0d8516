"""splare-lucene encode-queries: queries -> a pre-encoded query file for Anserini's
SearchCollection (anserini-tsv) or Pyserini's search CLI (pyserini-jsonl); see docs/anserini.md."""

from __future__ import annotations

import argparse

from ..query_files import FORMATS
from .common import add_model, add_runtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--queries", required=True, help="BEIR folder, .jsonl, .tsv (id<TAB>text), or irds:<id>")
    p.add_argument("--output", required=True, help="query file to write")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="anserini-tsv: `qid<TAB>tokens` for SearchCollection -impact -pretokenized "
                        "-topicReader TsvString; pyserini-jsonl: {id, title, contents, vector} lines for "
                        "`python -m pyserini.search.lucene --impact --encoder FILE --topics FILE --min-idf -1`")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--query-quantization", choices=["none", "int8"], default="none",
                   help="int8: the backbone's linear layers in int8 for queries (CPU only; 1.5-2x faster "
                   "on one thread, rankings differ: benchmarks/results/query_encode.md)")
    add_runtime(p)


def run(args) -> int:
    from pathlib import Path

    from ..corpus import read_queries
    from ..encoder import SplareEncoder
    from ..errors import ConfigError
    from ..query_files import write_query_file

    from ..outputs import check_not_input, check_output_file

    check_not_input(args.output, {"--queries": args.queries, "--model": args.model})
    if Path(args.output).exists() and not args.overwrite:  # fail before loading the model
        raise ConfigError(f"output {args.output} already exists; pass --overwrite to replace it")
    check_output_file(args.output)
    queries = list(read_queries(args.queries))
    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                             quantize=args.query_quantization)
    summary = write_query_file(encoder, queries, args.output, args.format, batch_size=args.batch_size,
                               overwrite=args.overwrite)
    print(summary.describe(args.output))
    return 0
