"""splare-lucene label-latents: label a model's latents (top contexts over a corpus, or an
imported Neuronpedia export) into ``latent_labels.json`` in its model directory."""

from __future__ import annotations

import argparse
import logging

from .common import add_model, add_runtime
from .options import ArgumentCheckError, non_negative_int, positive_int

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="documents to find each latent's top contexts in (BEIR folder, "
                     ".jsonl(.gz), .tsv or irds:<id>)")
    src.add_argument("--import-neuronpedia", nargs="+", metavar="FILE",
                     help="Neuronpedia explanation export(s): JSON array, {\"explanations\": [...]}, or "
                     "JSONL(.gz) batches (records with modelId, layer, index, description)")
    p.add_argument("--sae-id", default=None,
                   help="--import-neuronpedia: keep the explanations of this Neuronpedia SAE id (its "
                   "\"layer\", e.g. 6-res-jb); needed when the export holds several")
    p.add_argument("--top-n", type=positive_int, default=None, help="contexts kept per latent (default 8)")
    p.add_argument("--max-docs", type=positive_int, default=None, help="read at most N documents")
    p.add_argument("--context-words", type=non_negative_int, default=None,
                   help="words of context either side of a token (default 4)")
    add_runtime(p, batch_size_default=8)


def check_arguments(args: argparse.Namespace) -> None:
    """Options of one mode given in the other are refused (exit 2)."""
    if args.import_neuronpedia:
        given = [o for o, v in (("--top-n", args.top_n), ("--max-docs", args.max_docs),
                                ("--context-words", args.context_words)) if v is not None]
        if given:
            raise ArgumentCheckError(f"argument {given[0]}: applies to --corpus, not --import-neuronpedia")
    elif args.sae_id is not None:
        raise ArgumentCheckError("argument --sae-id: applies to --import-neuronpedia")


def run(args) -> int:
    from ..encoder import resolve_model_dir

    model_dir = resolve_model_dir(args.model)  # before anything loads
    if args.import_neuronpedia:
        return _import(args, model_dir)
    from ..corpus import read_documents
    from ..encoder import SplareEncoder
    from ..engines.parts import corpus_identity
    from ..explain.labels import DEFAULT_CONTEXT_WORDS, DEFAULT_TOP_N, build_labels, load_latent_labels, \
        save_latent_labels

    corpus_identity(args.corpus)  # a missing corpus fails before the model loads
    encoder = SplareEncoder.from_pretrained(model_dir, device=args.device, dtype=args.dtype)
    _check_sae(encoder.config.representation, model_dir)
    existing = load_latent_labels(model_dir, d_sae=encoder.d_sae)
    labels = build_labels(encoder, read_documents(args.corpus), top_n=args.top_n or DEFAULT_TOP_N,
                          context_words=DEFAULT_CONTEXT_WORDS if args.context_words is None else args.context_words,
                          batch_size=args.batch_size, max_docs=args.max_docs,
                          source={"corpus": args.corpus, "max_docs": args.max_docs})
    if existing is not None:  # imported descriptions survive a rebuild of the contexts
        from ..explain.records import LatentLabel

        latents = dict(labels.latents)
        for i, old in existing.latents.items():
            if old.description:
                latents[i] = LatentLabel(i, old.description, latents[i].top if i in latents else ())
        kept = tuple(s for s in existing.sources if s.get("kind") == "neuronpedia")
        labels = type(labels)(labels.d_sae, labels.model_fingerprint, labels.created, labels.sources + kept, latents)
    path = save_latent_labels(labels, model_dir)
    print(f"labelled {sum(1 for x in labels.latents.values() if x.top)} of {labels.d_sae} latents from "
          f"{labels.sources[0]['documents']} documents; wrote {path}")
    return 0


def _check_sae(representation: str, model_dir) -> None:
    from ..errors import ConfigError

    if representation != "sae":
        raise ConfigError(f"{model_dir} is a vocabulary (SPLADE) model: its dimensions are tokens and need no "
                          "labels; label-latents labels SAE latents")


def _import(args, model_dir) -> int:
    from ..config import SplareConfig
    from ..encoder import model_fingerprint
    from ..explain.labels import import_neuronpedia, load_latent_labels, merge_descriptions, save_latent_labels
    from ..sae.config import SAEConfig
    from ..sae.formats import NATIVE_CONFIG

    config = SplareConfig.load(model_dir)
    _check_sae(config.representation, model_dir)
    d_sae = SAEConfig.load(model_dir / config.sae / NATIVE_CONFIG).d_sae  # no weights loaded
    fingerprint = model_fingerprint(model_dir, config)
    descriptions, source = import_neuronpedia(args.import_neuronpedia, d_sae, sae_id=args.sae_id)
    existing = load_latent_labels(model_dir, d_sae=d_sae)
    path = save_latent_labels(merge_descriptions(existing, descriptions, source, d_sae, fingerprint), model_dir)
    print(f"imported {len(descriptions)} descriptions of {d_sae} latents; wrote {path}")
    return 0
