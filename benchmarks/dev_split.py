"""The dev collection on which the default model's recipe is chosen (issue 12): a small BEIR folder
cut from squad-train's *held-out* queries, never from any test collection.

Which queries: ``distill-data --holdout H`` holds out every query whose positive passage ``p``
has ``holdout_rank(p) < H`` (:func:`splare_lucene.train.distill.holdout_rank`: sha256 of the
passage id); no training file it writes contains them or their passages. This script takes the
same rule (``--holdout``, default 0.05, the value the default recipe's training file uses) and
keeps ``--queries`` of those queries (default 200): the ones with the smallest sha256 of their
query id, so the choice is deterministic and independent of the machine. ``--skip S`` passes
over the first S of them: ``--queries 1000 --skip 1000`` is a second split of 1,000 queries that
none of the first 1,000 is in (a fresh dev split for confirming what an earlier one suggested).

Which documents (``--documents``, default 800):
  1. every positive passage of the kept queries;
  2. ``--siblings`` (default 2) other passages of the same Wikipedia article per positive
     (SQuAD ids are ``sq-<article>-<paragraph>``): the hard distractors, on the query's topic;
  3. filled up to ``--documents`` with the passages of smallest sha256(id) not taken yet.
Siblings and fill passages may have been seen in training (as positives or negatives of other
queries); the dev *queries* and their *positives* were not.

Output: ``OUT/corpus.jsonl``, ``OUT/queries.jsonl``, ``OUT/qrels/dev.tsv`` and
``OUT/dev_split.json`` (the settings and counts), written to a temporary folder and renamed into
place. Evaluate a model on it with::

    splare-lucene evaluate --model M --collection build/dev/squad-dev --split dev --bm25

The training side (``--train-output TRAIN``): a BEIR folder for ``splare-lucene train --data
TRAIN`` whose ``qrels/train.tsv`` is the source's without *every* held-out query (not only the
``--queries`` kept for dev), so that no dev query can be trained on; ``corpus.jsonl`` and
``queries.jsonl`` are symbolic links to the source's (nothing is copied), and
``train_split.json`` records the counts. The held-out queries' passages stay in the linked
corpus, so ``train`` may still draw them as BM25 *negatives* of other queries (never as
positives: every query about a held-out passage is held out with it).

An existing output folder is replaced only if this script wrote it (it holds ``dev_split.json``
or ``train_split.json``); the outputs may not overlap the source or each other.

Usage: ``python benchmarks/dev_split.py [--source ../shared/data/squad-train] [--output
build/dev/squad-dev] [--train-output DIR]`` (a few seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splare_lucene.corpus import read_documents, read_queries  # noqa: E402
from splare_lucene.evaluate import read_qrels  # noqa: E402
from splare_lucene.train.distill import holdout_rank, qrels_file, written_positive  # noqa: E402


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _article(doc_id: str) -> str:
    """``sq-000-015`` -> ``sq-000`` (the SQuAD article); other ids are their own article."""
    parts = doc_id.rsplit("-", 1)
    return parts[0] if len(parts) == 2 else doc_id


def held_out(qrels: dict[str, dict[str, int]], doc_ids, holdout: float) -> set[str]:
    """The query ids distill-data ``--holdout`` holds out: ``holdout_rank(written positive) < holdout``."""
    held = set()
    for qid, judged in qrels.items():
        written, _ = written_positive(judged, doc_ids)  # the key distill-data holds a query out by
        if written is not None and holdout_rank(written) < holdout:
            held.add(qid)
    return held


@contextmanager
def _atomic_folder(output: Path, marker: str) -> Iterator[Path]:
    """A temporary folder beside ``output``, renamed onto it if the block succeeds. An existing
    ``output`` is replaced only if it holds ``marker`` (it is an earlier output of this script);
    any other existing folder is refused (SystemExit), so a mistyped path deletes nothing."""
    if output.exists() and not (output / marker).is_file():
        raise SystemExit(f"{output} exists and is not an output of this script (no {marker}); "
                         "choose a new folder or remove it first")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=output.name + ".", dir=output.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build(source: Path, output: Path, *, holdout: float, n_queries: int, n_documents: int,
          siblings: int, train_output: Path | None = None, skip: int = 0) -> dict:
    qrels = read_qrels(qrels_file(source, "train"))
    docs = {d.id: d for d in read_documents(str(source))}
    queries = {q.id: q for q in read_queries(str(source)) if q.id in qrels}
    held_all = held_out(qrels, docs, holdout)
    held = [qid for qid in held_all if qid in queries]
    if len(held) < skip + n_queries:
        raise SystemExit(f"only {len(held)} held-out queries at --holdout {holdout}; lower --queries"
                         + (" or --skip" if skip else ""))
    kept = sorted(held, key=_hash)[skip:skip + n_queries]
    positives = sorted({d for q in kept for d, rel in qrels[q].items() if rel > 0 and d in docs})
    by_article = defaultdict(list)
    for doc_id in docs:
        by_article[_article(doc_id)].append(doc_id)
    chosen = dict.fromkeys(positives)
    for pid in positives:
        others = sorted((d for d in by_article[_article(pid)] if d not in chosen), key=_hash)
        chosen.update(dict.fromkeys(others[:siblings]))
    n_siblings = len(chosen) - len(positives)
    if len(chosen) > n_documents:
        raise SystemExit(f"{len(chosen)} positives and siblings exceed --documents {n_documents}")
    for doc_id in sorted(docs, key=_hash):
        if len(chosen) >= n_documents:
            break
        chosen.setdefault(doc_id)
    with _atomic_folder(output, "dev_split.json") as tmp:
        (tmp / "qrels").mkdir()
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            for doc_id in sorted(chosen):
                d = docs[doc_id]
                f.write(json.dumps({"_id": d.id, "title": "", "text": d.text}, ensure_ascii=False) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for qid in sorted(kept):
                f.write(json.dumps({"_id": qid, "text": queries[qid].text}, ensure_ascii=False) + "\n")
        with open(tmp / "qrels" / "dev.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid in sorted(kept):
                for doc_id, rel in sorted(qrels[qid].items()):
                    if rel > 0 and doc_id in chosen:
                        f.write(f"{qid}\t{doc_id}\t{rel}\n")
        meta = {"source": str(source), "holdout": holdout, "queries": len(kept), "skipped_queries": skip,
                "held_out_queries": len(held),
                "documents": len(chosen), "positives": len(positives), "siblings": n_siblings,
                "fill": len(chosen) - len(positives) - n_siblings, "siblings_per_positive": siblings,
                "rule": "queries: held out by distill-data's rule (holdout_rank(positive id) < holdout), the "
                        "n with smallest sha256(query id) after the skipped ones; documents: positives, then per positive the "
                        "siblings of its article with smallest sha256(id), then fill by sha256(id)"}
        (tmp / "dev_split.json").write_text(json.dumps(meta, indent=2) + "\n")
    if train_output is not None:
        meta["train"] = write_training_folder(source, train_output, qrels, held_all, holdout)
    return meta


def write_training_folder(source: Path, output: Path, qrels: dict[str, dict[str, int]], held: set[str],
                          holdout: float) -> dict:
    """``output``: the source as a BEIR training folder without the ``held`` queries' qrels."""
    source = source.resolve()
    with _atomic_folder(output, "train_split.json") as tmp:
        for name in ("corpus.jsonl", "queries.jsonl"):
            os.symlink(source / name, tmp / name)
        (tmp / "qrels").mkdir()
        kept = [q for q in qrels if q not in held]  # the source's order (train reads qrels in order)
        with open(tmp / "qrels" / "train.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid in kept:
                for doc_id, rel in qrels[qid].items():
                    f.write(f"{qid}\t{doc_id}\t{rel}\n")
        meta = {"source": str(source), "holdout": holdout, "queries": len(kept),
                "held_out_queries": len(held),
                "rule": "qrels/train.tsv: the source's without every query held out by distill-data's rule "
                        "(holdout_rank(positive id) < holdout); corpus and queries: links to the source's"}
        (tmp / "train_split.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "squad-train")
    p.add_argument("--output", type=Path, default=ROOT / "build" / "dev" / "squad-dev")
    p.add_argument("--holdout", type=float, default=0.05,
                   help="the distill-data --holdout of the training file (default 0.05)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--documents", type=int, default=800)
    p.add_argument("--siblings", type=int, default=2)
    p.add_argument("--skip", type=int, default=0,
                   help="pass over the first SKIP held-out queries (sha256 order): a second dev split whose "
                        "queries no earlier split with --queries <= SKIP holds (default 0)")
    p.add_argument("--train-output", type=Path, default=None,
                   help="also write a training folder for `splare-lucene train --data`: the source's "
                        "qrels without every held-out query, corpus and queries linked to the source's")
    args = p.parse_args(argv)
    if not (args.source / "qrels" / "train.tsv").is_file():
        raise SystemExit(f"--source {args.source}: no qrels/train.tsv there; give a BEIR training folder "
                         "(corpus.jsonl, queries.jsonl, qrels/train.tsv), e.g. ../shared/data/squad-train")
    if args.queries < 1 or args.documents < 1:
        raise SystemExit("--queries and --documents must be at least 1")
    if args.skip < 0:
        raise SystemExit("--skip must be 0 or more (held-out queries to pass over)")
    folders = {"--source": args.source.resolve(), "--output": args.output.resolve()}
    if args.train_output:
        folders["--train-output"] = args.train_output.resolve()
    for a, fa in folders.items():  # an output is written whole: none may hold, or lie in, another
        for b, fb in folders.items():
            if a < b and (fa == fb or fa.is_relative_to(fb) or fb.is_relative_to(fa)):
                raise SystemExit(f"{a} {fa} and {b} {fb} overlap; give separate folders, neither inside the other")
    meta = build(args.source, args.output, holdout=args.holdout, n_queries=args.queries,
                 n_documents=args.documents, siblings=args.siblings, train_output=args.train_output,
                 skip=args.skip)
    print(json.dumps(meta, indent=2))
    print(f"wrote {args.output}" + (f" and {args.train_output}" if args.train_output else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
