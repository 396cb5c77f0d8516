"""``splare-lucene`` entry point. Each command lives in its own module and is imported only
when it runs, so ``--help`` stays fast (no torch, transformers or JVM).

Numbers are validated while parsing (:mod:`.options`; a command's ``check_arguments`` checks
options that depend on each other), so a bad value exits 2 before anything loads. A failure
while running prints one line, ``splare-lucene COMMAND: error: ...``, and exits 1
(:mod:`.failures` maps each kind of exception to its message); ``--debug`` or
``SPLARE_LUCENE_DEBUG=1`` prints the traceback first. Ctrl-C exits 130, SIGTERM (what ``timeout``,
``docker stop`` and batch schedulers send) 143, both after the command's cleanup has run (a staged
output directory removed, a training checkpoint kept)."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from contextlib import contextmanager

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


# Options of the model's inference settings that users pass to search or encode commands; the
# hint of their "unrecognized arguments" refusal says where they belong.
MODEL_SETTINGS = ("--query-top-k", "--doc-top-k", "--text-normalization", "--query-idf-power",
                  "--query-idf-corpus", "--query-max-length", "--doc-max-length", "--quantization-scale")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt so that the same cleanup
    runs (``except BaseException`` / ``finally`` blocks, training's interrupt checkpoint)."""


@contextmanager
def _sigterm_raises():
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread instead of
    killing the process before cleanup. Nothing is changed off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    arguments, from argparse), 130 (Ctrl-C) or 143 (SIGTERM)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args, unknown)  # exits 2
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
        with _sigterm_raises():
            return module.run(args) or 0
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every other failure: one line with its context (failures.py)
        return report(exc, args.command, args, debug=debug)


def _refuse_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]):
    """Refuse arguments no parser took, from the command's own parser (its name and help in the
    line) and, for a model setting given to a command that reads a model, with where it belongs."""
    command = command_parsers(parser).get(args.command) if args.command else None
    message = f"unrecognized arguments: {' '.join(unknown)}"
    settings = [a.split("=", 1)[0] for a in unknown if a.split("=", 1)[0] in MODEL_SETTINGS]
    if settings and args.command != "configure":
        message += (f"; {settings[0]} is a setting of the model, not of `{args.command}`: make a copy "
                    f"with it, `splare-lucene configure --model M --output DIR {settings[0]} ...`, and "
                    "pass --model DIR")
    (command or parser).error(message)


if __name__ == "__main__":
    sys.exit(main())
