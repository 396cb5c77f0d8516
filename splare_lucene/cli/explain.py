"""splare-lucene explain: a query's latents, and why a document scores what it does."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import ArgumentCheckError, non_negative_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("query", help="the query text")
    doc = p.add_mutually_exclusive_group()
    doc.add_argument("--doc-id", help="a document of --index, by collection id (its indexed vector is used)")
    doc.add_argument("--doc-text", help="a document given as text (encoded here)")
    p.add_argument("--index", help="the Lucene index holding --doc-id")
    p.add_argument("--format", choices=["text", "json", "html"], default="text")
    p.add_argument("--output", help="write the report to this file (default: print it; html needs a file)")
    p.add_argument("--max-tokens", type=non_negative_int, default=5,
                   help="activating tokens listed per latent and text (default 5)")
    add_runtime(p, batch_size=False)  # one query and one document: nothing to batch


def check_arguments(args: argparse.Namespace) -> None:
    if args.doc_id is not None and args.index is None:
        raise ArgumentCheckError("argument --doc-id: needs --index DIR (the index that holds the document)")
    if args.index is not None and args.doc_id is None:
        raise ArgumentCheckError("argument --index: applies to --doc-id")
    if args.format == "html" and args.output is None:
        raise ArgumentCheckError("argument --format: html needs --output FILE.html")


def run(args) -> int:
    from ..errors import InputError

    if not args.query.strip():
        raise InputError(f"the query is empty ({args.query!r}); give the text to explain")
    if args.output:
        from ..outputs import check_not_input, check_output_file

        check_not_input(args.output, {"--index": args.index, "--model": args.model})
        check_output_file(args.output)
    if args.index is not None:
        from ..backends import resolve_backend
        from ..errors import ConfigError

        # a missing index, or a Seismic one (no stored vectors to read), fails before the model loads
        if resolve_backend(args.index) != "lucene":
            raise ConfigError(f"explain --doc-id reads Lucene indexes; {args.index} is a Seismic index: explain "
                              "the document's text instead (--doc-text TEXT)")
    from ..encoder import SplareEncoder
    from ..explain.explain import explain, explain_indexed, write_explanation

    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    if args.doc_id is not None:
        result = explain_indexed(encoder, args.index, args.query, args.doc_id, max_tokens=args.max_tokens)
    else:
        result = explain(encoder, args.query, args.doc_text, max_tokens=args.max_tokens)
    out = write_explanation(result, args.format, args.output)
    if args.output:
        print(f"wrote {args.format} explanation to {args.output}")
    else:
        print(out, end="")
    return 0
