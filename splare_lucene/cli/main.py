"""``splare-lucene`` entry point. Each command lives in its own module and is imported only
when it runs, so ``--help`` stays fast (no torch, transformers or JVM)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import SplareError

# command -> (module under splare_lucene.cli, one-line help)
COMMANDS = {
    "encode": ("encode", "encode a corpus into Anserini JsonVectorCollection shards"),
    "index": ("index", "build a Lucene impact index (from a corpus, or from encoded shards)"),
    "search": ("search", "search an index: a query file to a TREC run, or one --query"),
    "evaluate": ("evaluate", "model + collections -> index, search and metrics table (BEIR, MIRACL, folders)"),
    "encode-queries": ("encode_queries", "write pre-encoded queries for Anserini/Pyserini command lines"),
    "train": ("train", "fine-tune a SPLARE model (or the vocabulary SPLADE baseline) with LoRA"),
    "train-sae": ("train_sae", "train a TopK SAE on a backbone's layer-L activations"),
    "adapt": ("adapt", "bidirectional-attention adaptation (masked next-token prediction) with LoRA"),
    "assemble": ("assemble", "assemble a SPLARE model directory from a backbone and an SAE"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splare-lucene",
        description="SPLARE (sparse-autoencoder latent) retrieval with Lucene/Anserini.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(f"{__package__}.{module}").add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return importlib.import_module(f"{__package__}.{args._module}").run(args) or 0
    except SplareError as exc:
        print(f"splare-lucene {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
