"""Where a SPLARE run wins and loses against BM25, query by query.

For a SPLARE model searched on a BEIR folder's queries (``--index``: an impact index of the
collection built by the model, searched here at k=1000 as ``splare-lucene search`` does; or ``--run``:
a TREC run of it), BM25 is run on the same queries as ``splare-lucene evaluate --bm25`` runs it
(Anserini's BM25, k1=0.9 b=0.4, the collection language's analyzer: ``splare_lucene.bm25``), and
per query (nDCG@10 by ``splare_lucene.evaluate``, qrels of ``--split``):

- wins, losses and ties of SPLARE against BM25, and the queries where both score 0;
- the mean overlap of the two top-10s (shared documents / 10);
- the per-query maximum of the two (an oracle that picks the better system for each query: an
  upper bound on what choosing between them could give, not a system);
- RRF fusion of the two runs at k=60 (``splare_lucene.fusion.fuse``, Cormack et al. 2009;
  untuned, so no query is used to choose it);
- the ``--show`` queries SPLARE loses most on and wins most on, with their text.

    python benchmarks/per_query_vs_bm25.py --index IDX --collection ../shared/data/cranfield
    python benchmarks/per_query_vs_bm25.py --run RUN --collection ../shared/data/cranfield

Writes ``--out`` + ``.json`` and ``.md`` (default benchmarks/results/per_query_vs_bm25_<collection>, slashes as underscores).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_results.py
from _results import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEASURE = "nDCG@10"
EPS = 1e-9


def compare(model_run: dict, bm25_run: dict, qrels: dict, queries: dict[str, str], show: int) -> dict:
    """Per-query figures of ``model_run`` against ``bm25_run`` (both ``{qid: [ScoredDoc]}``)."""
    from splare_lucene.evaluate import evaluate
    from splare_lucene.fusion import fuse
    from splare_lucene.ranking import rank_hits

    def per_query(run):
        aggregate, rows = evaluate(run, qrels, [MEASURE])
        return aggregate[MEASURE], {q: v for q, _m, v in rows}

    model_mean, model = per_query(model_run)
    bm25_mean, bm25 = per_query(bm25_run)
    fused_mean, _ = per_query(fuse([model_run, bm25_run], method="rrf", rrf_k=60))
    judged = sorted(set(model) | set(bm25))
    pairs = [(q, model.get(q, 0.0), bm25.get(q, 0.0)) for q in judged]

    def top10(run, q):
        return {h.doc_id for h in rank_hits(run.get(q, []))[:10]}

    overlap = statistics.mean(len(top10(model_run, q) & top10(bm25_run, q)) / 10 for q in judged)
    by_difference = sorted(pairs, key=lambda p: (p[1] - p[2], p[0]))
    row = lambda p: {"query_id": p[0], "model": round(p[1], 4), "bm25": round(p[2], 4),  # noqa: E731
                     "difference": round(p[1] - p[2], 4), "text": queries.get(p[0], "")}
    return {"queries": len(judged), "model": round(model_mean, 4), "bm25": round(bm25_mean, 4),
            "rrf_k60": round(fused_mean, 4),
            "oracle_max": round(statistics.mean(max(m, b) for _, m, b in pairs), 4),
            "wins": sum(m > b + EPS for _, m, b in pairs), "losses": sum(b > m + EPS for _, m, b in pairs),
            "ties": sum(abs(m - b) <= EPS for _, m, b in pairs),
            "both_zero": sum(m == 0 and b == 0 for _, m, b in pairs),
            "model_zero_bm25_not": sum(m == 0 < b for _, m, b in pairs),
            "bm25_zero_model_not": sum(b == 0 < m for _, m, b in pairs),
            "top10_overlap": round(overlap, 4),
            "largest_losses": [row(p) for p in by_difference[:show]],
            "largest_wins": [row(p) for p in reversed(by_difference[-show:])]}


def render(r: dict, command: str) -> str:
    lines = [f"# {r['name']} against BM25, query by query ({r['collection']}, {r['queries']} judged queries)", "",
             f"Run: `{r['run']}`; BM25: Anserini (k1=0.9, b=0.4), {r['language']} analyzer, as "
             "`splare-lucene evaluate --bm25`.", "",
             f"| {MEASURE} | {r['name']} | BM25 | RRF k=60 (untuned) | per-query max (oracle) |",
             "|---|---:|---:|---:|---:|",
             f"| mean | {r['model']:.4f} | {r['bm25']:.4f} | {r['rrf_k60']:.4f} | {r['oracle_max']:.4f} |", "",
             f"- {r['name']} ahead on {r['wins']} queries, behind on {r['losses']}, tied on {r['ties']} "
             f"({r['both_zero']} of them 0 for both).",
             f"- {r['name']} 0 where BM25 is not: {r['model_zero_bm25_not']} queries; BM25 0 where "
             f"{r['name']} is not: {r['bm25_zero_model_not']}.",
             f"- Mean overlap of the two top-10s: {r['top10_overlap']:.3f}.", ""]
    for title, key in (("Largest losses", "largest_losses"), ("Largest wins", "largest_wins")):
        lines += [f"## {title}", "", f"| query | {r['name']} | BM25 | difference | text |", "|---|---:|---:|---:|---|"]
        lines += [f"| {x['query_id']} | {x['model']:.3f} | {x['bm25']:.3f} | {x['difference']:+.3f} | "
                  f"{x['text'][:100].replace('|', '/')} |" for x in r[key]]
        lines.append("")
    lines += [f"Command: `{command}`  ", f"Machine: {r['machine']}; {r['date']}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", type=Path, help="impact index of the collection built by --model (searched at k=1000)")
    source.add_argument("--run", type=Path, help="TREC run of the model (k=1000) on --collection's queries")
    ap.add_argument("--model", default="default", help="with --index: the model that built it (default: the built-in one)")
    ap.add_argument("--collection", required=True, help="BEIR folder (or a name `evaluate` takes)")
    ap.add_argument("--split", default="test", help="qrels split (default test, as `evaluate`)")
    ap.add_argument("--name", default="SPLARE", help="the model's name in the tables")
    ap.add_argument("--show", type=int, default=8, help="largest losses and wins listed")
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks" / "results" / "per-query-work",
                    help="BM25 index cache (gitignored)")
    ap.add_argument("--out", default=None, help="results prefix (default results/per_query_vs_bm25_<collection>)")
    args = ap.parse_args()

    from splare_lucene.bm25 import bm25_index, bm25_search
    from splare_lucene.collections import check_available, load_topics, resolve_collection
    from splare_lucene.evaluate import read_run
    from splare_lucene.fusion import pairs_to_run

    collection = resolve_collection(args.collection, split=args.split)
    check_available(collection)
    topics = load_topics(collection)
    if args.index is not None:
        from splare_lucene.search import SplareQueryEncoder, batch_search, open_searcher

        searcher = open_searcher(args.index, SplareQueryEncoder.from_pretrained(args.model, device="cpu"))
        try:
            model_run = batch_search(searcher, topics.queries, k=1000, progress=True)
        finally:
            searcher.close()
    else:
        model_run = read_run(args.run)
    missing = [q.id for q in topics.queries if q.id in topics.qrels and q.id not in model_run]
    if len(missing) == len([q for q in topics.queries if q.id in topics.qrels]):
        raise SystemExit(f"--run {args.run} holds none of {collection.name}'s judged queries: was it "
                         "searched with this collection's queries?")
    args.work.mkdir(parents=True, exist_ok=True)
    index = bm25_index(collection.source, language=collection.language, cache_dir=args.work,
                       corpus_key=collection.corpus_key)
    bm25_run = pairs_to_run(bm25_search(index, {q.id: q.text for q in topics.queries}, k=1000,
                                        language=collection.language))
    results = compare(model_run, bm25_run, topics.qrels, {q.id: q.text for q in topics.queries}, args.show)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    results.update({"name": args.name, "collection": collection.name, "split": args.split, "run": str(args.run or f"--index {args.index} --model {args.model}"),
                    "language": collection.language, "queries_missing_from_run": len(missing),
                    "command": command, "machine": f"{platform.node()}, {os.cpu_count()} CPUs",
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    slug = collection.name.replace("/", "_")
    out = args.out or str(REPO / "benchmarks" / "results" / f"per_query_vs_bm25_{slug}")
    write_results(out, results, render(results, command))


if __name__ == "__main__":
    main()
