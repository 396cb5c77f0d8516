"""``splare-lucene`` entry point. Each command lives in its own module and is imported only
when it runs, so ``--help`` stays fast (no torch, transformers or JVM).

Numbers are validated while parsing (:mod:`.options`; a command's ``check_arguments`` checks
options that depend on each other), so a bad value exits 2 before anything loads. A failure
while running prints one line, ``splare-lucene COMMAND: error: ...``, and exits 1
(:mod:`.failures` maps each kind of exception to its message); ``--debug`` or
``SPLARE_LUCENE_DEBUG=1`` prints the traceback first. Ctrl-C exits 130."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import ConfigError
from .failures import DEBUG_ENV, debug_requested, report
from .options import ArgumentCheckError

# command -> (module under splare_lucene.cli, one-line help)
COMMANDS = {
    "encode": ("encode", "encode a corpus into Anserini JsonVectorCollection shards"),
    "index": ("index", "build a Lucene impact index (from a corpus, or from encoded shards)"),
    "search": ("search", "search an index: a query file to a TREC run, or one --query"),
    "evaluate": ("evaluate", "model + collections -> index, search and metrics table (BEIR, MIRACL, folders)"),
    "encode-queries": ("encode_queries", "write pre-encoded queries for Anserini/Pyserini command lines"),
    "train": ("train", "fine-tune a SPLARE model (or the vocabulary SPLADE baseline) with LoRA"),
    "distill-data": ("distill_data", "write KL training data (positives, BM25 and teacher negatives, teacher "
                     "scores) from a BEIR folder with a dense teacher (extra: teacher)"),
    "train-sae": ("train_sae", "train a TopK SAE on a backbone's layer-L activations"),
    "adapt": ("adapt", "bidirectional-attention adaptation (masked next-token prediction) with LoRA"),
    "assemble": ("assemble", "assemble a SPLARE model directory from a backbone and an SAE"),
    "configure": ("configure", "copy a model directory with other inference settings (top-k, lengths, "
                  "quantization scale, text normalisation)"),
    "label-latents": ("label_latents", "label a model's latents: top contexts over a corpus, or a Neuronpedia import"),
    "explain": ("explain", "explain a query's latents and a document's score, latent by latent (text, json, html)"),
}


class CommandParser(argparse.ArgumentParser):
    """argparse with a one-line refusal: ``PROG: error: MESSAGE (see `PROG --help`)`` and exit
    status 2, instead of the whole usage block before the line that says what is wrong."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="splare-lucene",
        description="SPLARE (sparse-autoencoder latent) retrieval with Lucene/Anserini.",
        epilog=f"A failure prints one line, `splare-lucene COMMAND: error: ...` (exit status 1; 2 "
               f"for bad arguments). --debug or {DEBUG_ENV}=1 also prints the traceback.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help=f"on failure, print the full traceback (chained causes included) before "
                        f"the error line; same as {DEBUG_ENV}=1")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(f"{__package__}.{module}").add_arguments(p)
        # also accepted after the command; SUPPRESS keeps a main-parser --debug from being reset
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the traceback of a failure (as `splare-lucene --debug COMMAND`)")
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging (as `splare-lucene -v COMMAND`)")
        p.set_defaults(_module=module)
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-parser of each command of ``parser`` (from :func:`build_parser`)."""
    for action in parser._actions:  # argparse keeps sub-parsers only in its private action list
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status: 0, 1 (an error, printed as one line), 2 (bad
    arguments, from argparse) or 130 (Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        debug = debug_requested(args.debug)
    except ConfigError as exc:
        parser.error(str(exc))  # exits 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(f"{__package__}.{args._module}")
    check = getattr(module, "check_arguments", None)
    if check is not None:
        try:
            check(args)
        except ArgumentCheckError as exc:
            command_parsers(parser)[args.command].error(str(exc))  # exits 2, as argparse's own checks
    try:
        return module.run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every other failure: one line with its context (failures.py)
        return report(exc, args.command, args, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
