"""Search latency of every backend on the same queries, in one process and one thread (issue 11).

Systems, on the same encoded documents and the same pre-encoded queries:

* ``bm25``: Pyserini's ``LuceneSearcher`` (Anserini BM25, k1=0.9 b=0.4) on the documents' text;
* ``lucene-pyserini``: Pyserini's ``LuceneImpactSearcher(min_idf=-1)``, the exact reference;
* ``lucene``: the toolkit's search path (:class:`splare_lucene.search.ImpactSearcher`);
* ``seismic-<setting>``: the Seismic backend with its defaults and tuned settings (:data:`SEISMIC`).

Query encoding is done once, before any timing (one query at a time on one torch thread, its p50
printed separately); every search timing starts from the encoded ``{term: impact}`` and ends with
the hits as Python ``(docid, score)`` pairs (what a run needs). Per query the systems run in a
rotating order (query i starts with system i mod n), after an untimed warm-up pass, at k=10 and
k=1000. Agreement: overlap@10 of each system's top 10 with the reference's (over queries where the
reference has hits), and for the toolkit's Lucene path the share of queries whose hits and scores
equal the reference's exactly (k=10 and k=1000).

Inputs: the encoded JSONL folders of ``splare-lucene encode`` (``--encoded NAME=DIR``; default
``benchmarks/results/perf-work/<name>-default``) and ``../shared/data/<name>/queries.jsonl``. Only
finished part files are read, in order, up to ``--max-docs`` documents (the count actually used is
recorded), so a folder still being encoded serves as a prefix. For squad-train, queries are the
first ``--max-queries`` (default 1,000) whose judged documents are all in that prefix. Indexes are
built under ``benchmarks/results/perf-work/search-latency/<collection>-<documents>-<model fingerprint>/``
(gitignored) and reused.

    .venv/bin/python benchmarks/search_latency.py                      # cranfield + squad-train
    .venv/bin/python benchmarks/search_latency.py --quick               # 60 queries, 2,000 documents
    .venv/bin/python benchmarks/search_latency.py --collections cranfield --profile

``--profile`` adds where a Lucene impact query's time goes (Pyserini's path, stage by stage, and
cProfile of the Python side). Writes ``benchmarks/results/search_latency.{json,md}`` with the
command. Timings on a shared machine are noisy: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import logging
import os
import platform
import pstats
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_results.py
from _results import percentile, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
WORK = REPO / "benchmarks" / "results" / "perf-work"
RESULTS = REPO / "benchmarks" / "results"
REFERENCE = "lucene-pyserini"

# Seismic settings: name -> (build options, search options). "default" is the backend's defaults
# (pyseismic-lsr 0.5.4's build values, heap_factor 0.8, every query term); "exact" prunes nothing
# (a check that the comparison itself is sound; opt-in, `--seismic exact`: with today's default,
# 1,000 latents per document, its build of 4,000 squad-train paragraphs took 434 s and the process
# then grew past this machine's 24 GB and was killed, 2026-12-02). The others trade agreement for speed.
SEISMIC: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "hf0.9": ({}, {"heap_factor": 0.9}),
    "hf1.0": ({}, {"heap_factor": 1.0}),
    "hf0.7": ({}, {"heap_factor": 0.7}),
    "qc10": ({}, {"query_cut": 10}),
    "qc5": ({}, {"query_cut": 5}),
    "n1000": ({"n_postings": 1000}, {}),
    "n1000-qc10": ({"n_postings": 1000}, {"query_cut": 10}),
    "exact": ("exact", "exact"),
}

logger = logging.getLogger("search_latency")


# -- inputs ---------------------------------------------------------------------------------------

def finished_parts(encoded: Path) -> list[Path]:
    """The part files of an encode output, in order (a part file appears only once written)."""
    parts = sorted(encoded.glob("shard-*.part-*.jsonl.gz"))
    if not parts:
        raise SystemExit(f"{encoded} has no finished part file (shard-*.part-*.jsonl.gz) yet; wait for "
                         "`splare-lucene encode` to write one, or pass --encoded NAME=DIR")
    return parts


def stage_prefix(encoded: Path, max_docs: int | None, out: Path) -> tuple[Path, Path, dict, list[str]]:
    """Write the first ``max_docs`` encoded documents to ``out/jsonl/part-00000.jsonl.gz`` and
    their text to ``out/corpus.jsonl``; returns (jsonl dir, corpus file, index meta, doc ids)."""
    manifest = json.loads(next(encoded.glob("manifest.shard-*.json")).read_text())
    jsonl_dir, corpus = out / "jsonl", out / "corpus.jsonl"
    ids_file = out / "ids.json"
    if not ids_file.is_file():
        jsonl_dir.mkdir(parents=True, exist_ok=True)
        ids: list[str] = []
        with gzip.open(jsonl_dir / "part-00000.jsonl.gz", "wt", encoding="utf-8") as vec_out, \
                corpus.open("w", encoding="utf-8") as text_out:
            for part in finished_parts(encoded):
                with gzip.open(part, "rt", encoding="utf-8") as f:
                    for line in f:
                        if max_docs is not None and len(ids) >= max_docs:
                            break
                        obj = json.loads(line)
                        ids.append(obj["id"])
                        vec_out.write(line if line.endswith("\n") else line + "\n")
                        text_out.write(json.dumps({"_id": obj["id"], "text": obj.get("contents", "")},
                                                  ensure_ascii=False) + "\n")
                if max_docs is not None and len(ids) >= max_docs:
                    break
        ids_file.write_text(json.dumps(ids))
    ids = json.loads(ids_file.read_text())
    meta = {"model": manifest.get("model"), "model_fingerprint": manifest.get("model_fingerprint"),
            "signature": manifest["signature"], "encoding": {"documents": len(ids), "source": str(encoded)}}
    return jsonl_dir, corpus, meta, ids


def load_queries(name: str, doc_ids: set[str], max_queries: int | None, judged_only: bool):
    """(queries, how they were chosen): every query, or (``judged_only``) those whose judged
    documents are all indexed; at most ``max_queries``, in file order."""
    from splare_lucene.corpus import read_queries
    from splare_lucene.evaluate import read_qrels

    folder = DATA / name
    queries = list(read_queries(str(folder / "queries.jsonl")))
    qrels: dict[str, dict[str, int]] = {}
    for path in sorted((folder / "qrels").glob("*.tsv")):
        for qid, docs in read_qrels(path).items():
            qrels.setdefault(qid, {}).update(docs)
    if judged_only:
        chosen = [q for q in queries if q.id in qrels and all(d in doc_ids for d in qrels[q.id])]
        rule = f"queries whose judged documents are all indexed ({len(chosen)} of {len(queries)})"
    else:
        chosen, rule = queries, f"every query of {folder / 'queries.jsonl'}"
    if max_queries is not None and len(chosen) > max_queries:
        chosen = chosen[:max_queries]
        rule += f", the first {max_queries} in file order"
    return chosen, rule


# -- systems ----------------------------------------------------------------------------------------

def build_systems(name: str, args, jsonl_dir: Path, corpus: Path, meta: dict, n_docs: int, queries, terms,
                  encoder, qe) -> tuple[dict[str, Callable], dict]:
    """name -> search(i, k) -> [(docid, score)] for query i; and what was built (paths, classes)."""
    from pyserini.search.lucene import LuceneImpactSearcher, LuceneSearcher

    from splare_lucene.backends import seismic as seismic_backend
    from splare_lucene.bm25 import bm25_index
    from splare_lucene.index import build_index
    from splare_lucene.search import open_searcher

    # one folder per model: an index of another model's vectors must never be timed with this one's queries
    base = WORK / "search-latency" / f"{name}-{n_docs}-{meta['model_fingerprint']}"
    built: dict = {}
    lucene_dir = base / "lucene"
    if not (lucene_dir / "splare_index.json").is_file():
        build_index(jsonl_dir, lucene_dir, meta={**meta, "backend": "lucene"}, threads=1, progress=False)
    built["lucene_index"] = str(lucene_dir)
    bm25_dir = bm25_index(str(corpus), language="en", cache_dir=base / "bm25", corpus_key=f"{name}-{n_docs}")
    built["bm25_index"] = str(bm25_dir)

    texts = [q.text for q in queries]
    bm25 = LuceneSearcher(str(bm25_dir))
    reference = LuceneImpactSearcher(str(lucene_dir), qe, min_idf=-1)
    ours = open_searcher(lucene_dir, qe)
    systems: dict[str, Callable] = {
        "bm25": lambda i, k: [(h.docid, h.score) for h in bm25.search(texts[i], k)],
        REFERENCE: lambda i, k: [(h.docid, h.score) for h in reference.search(texts[i], k)],
        "lucene": lambda i, k: [(h.docid, h.score) for h in ours.search_vector(terms[i], k)],
    }
    built_seismic: dict[str, Path] = {}
    for setting in args.seismic:
        build_opts, search_opts = SEISMIC[setting]
        if build_opts == "exact":
            build_opts = seismic_backend.exact_build(n_docs)
            search_opts = seismic_backend.EXACT_SEARCH
        key = json.dumps(seismic_backend.build_record(build_opts), sort_keys=True)
        if key not in built_seismic:
            path = base / f"seismic-{len(built_seismic)}"
            record = path / "splare_index.json"
            if not record.is_file() or json.loads(record.read_text())["seismic"]["build"] != json.loads(key):
                t0 = time.perf_counter()
                seismic_backend.BACKEND.build([jsonl_dir], path, meta=dict(meta), overwrite=True, progress=False,
                                              options=build_opts)
                logger.info("%s: Seismic build %s in %.1f s", name, key, time.perf_counter() - t0)
            built_seismic[key] = path
        index = seismic_backend.BACKEND.open(built_seismic[key], encoder, options=search_opts)
        built[f"seismic-{setting}"] = {"index": str(built_seismic[key]),
                                       "class": json.loads((built_seismic[key] / "splare_index.json").read_text())
                                       ["seismic"]["index_class"],
                                       "build": json.loads(key), "search": str(index.options)}
        ids = [q.id for q in queries]
        systems[f"seismic-{setting}"] = (lambda index, ids: lambda i, k: [
            (h.doc_id, h.score) for h in index.search_terms([ids[i]], [terms[i]], k=k)[ids[i]]])(index, ids)
    return systems, built


def overlap_at_10(hits, reference) -> float | None:
    top = [d for d, _ in reference[:10]]
    if not top:
        return None
    return len(set(top) & {d for d, _ in hits[:10]}) / len(top)


def ranked(pairs):
    from splare_lucene.ranking import rank_hits
    from splare_lucene.types import ScoredDoc

    return [(h.doc_id, h.score) for h in rank_hits(ScoredDoc("q", d, float(s), 0) for d, s in pairs)]


def measure(systems: dict[str, Callable], n: int, ks: list[int], warmup: int) -> dict:
    """Per k: per system, latencies (ms) and hits of every query."""
    names = list(systems)
    out: dict = {}
    for k in ks:
        for i in range(min(warmup, n)):  # JIT, caches, lazy loads: untimed
            for name in names:
                systems[name](i, k)
        lat = {s: [] for s in names}
        hits = {s: [] for s in names}
        clock = time.perf_counter_ns
        for i in range(n):
            r = i % len(names)
            for name in names[r:] + names[:r]:
                t0 = clock()
                h = systems[name](i, k)
                lat[name].append((clock() - t0) / 1e6)
                hits[name].append(h)
        out[k] = {"latency": lat, "hits": hits}
    return out


def summarise(name: str, measured: dict, ks: list[int]) -> dict:
    rows = {}
    for k in ks:
        lat, hits = measured[k]["latency"], measured[k]["hits"]
        ref = hits[REFERENCE]
        for system in lat:
            row = rows.setdefault(system, {})
            row[f"p50_k{k}"] = statistics.median(lat[system])
            row[f"p99_k{k}"] = percentile(lat[system], 99)
            if system != "bm25" and k == min(ks):  # BM25 ranks other evidence: no agreement to expect
                values = [v for v in (overlap_at_10(ranked(h), ranked(r)) for h, r in zip(hits[system], ref))
                          if v is not None]
                row["overlap10"] = statistics.fmean(values) if values else None
            if system == "lucene":
                row[f"identical_k{k}"] = sum(h == r for h, r in zip(hits[system], ref)) / len(ref)
    bm25 = {k: rows["bm25"][f"p50_k{k}"] for k in ks}
    for system, row in rows.items():
        for k in ks:
            row[f"x_bm25_k{k}"] = row[f"p50_k{k}"] / bm25[k]
            row[f"speedup_vs_lucene_k{k}"] = rows["lucene"][f"p50_k{k}"] / row[f"p50_k{k}"]
    return rows


# -- profile ------------------------------------------------------------------------------------------

def profile_impact_path(lucene_dir: Path, texts: list[str], terms: list[dict[str, int]], qe, ks: list[int],
                        n: int) -> dict:
    """Where Pyserini's impact query spends its time, stage by stage (p50 ms over ``n`` queries),
    against the toolkit's path, plus the top of cProfile for each Python side."""
    from jnius import autoclass
    from pyserini.pyclass import JHashMap, JInt
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene.search import _reader, open_searcher

    t0 = time.perf_counter()
    reference = LuceneImpactSearcher(str(lucene_dir), qe, min_idf=-1)
    open_reference = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = open_searcher(lucene_dir, qe)
    open_ours = time.perf_counter() - t0
    java = reference.object
    analyzer_utils = autoclass("io.anserini.analysis.AnalyzerUtils")
    whitespace = autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")()
    scored_docs = autoclass("io.anserini.search.ScoredDocs")
    generator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
    searcher = ours._searcher(1)
    reader = _reader()
    n = min(n, len(terms))

    def jmap(t):
        m = JHashMap()
        for token, weight in t.items():
            m.put(token, JInt(weight))
        return m

    def p50(fn, items):
        times = []
        for x in items:
            t0 = time.perf_counter_ns()
            fn(x)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        return statistics.median(times)

    maps = [jmap(t) for t in terms[:n]]
    queries = []
    for t in terms[:n]:
        m = autoclass("java.util.HashMap")()
        for token, weight in t.items():
            m.put(token, float(weight))
        queries.append(generator.buildQuery("contents", m))
    stages: dict = {"open_s": {"pyserini (Java searcher + idf of every term in Python)": open_reference,
                               "toolkit": open_ours}}
    for k in ks:
        for _ in range(2):  # the first round warms the JIT
            row = {
                "python: dict -> java.util.HashMap<String, Integer> (per term: JInt + put)": p50(jmap, terms[:n]),
                "java: SimpleImpactSearcher.search(map, k), whole call incl. result conversion":
                    p50(lambda m: java.search(m, k), maps),
                "python: read the ScoredDoc[] hits (.docid, .score per hit)":
                    p50(lambda hits: [(h.docid, h.score) for h in hits], [java.search(m, k) for m in maps]),
                "java: repeated-token string + WhitespaceAnalyzer (encode_with_onnx + AnalyzerUtils.analyze)":
                    p50(lambda m: analyzer_utils.analyze(whitespace, java.encode_with_onnx(m)), maps),
                "java: Lucene search, sorted by score then id": p50(
                    lambda q: searcher.search(q, k, ours._sort, True), queries),
                "java: ScoredDocs.fromTopDocs (stored document of every hit)": p50(
                    lambda td: scored_docs.fromTopDocs(td, searcher),
                    [searcher.search(q, k, ours._sort, True) for q in queries]),
                "toolkit: read ids, scores, doc numbers from the sorted results (no stored document)": p50(
                    lambda td: reader.read(td), [searcher.search(q, k, ours._sort, True) for q in queries]),
                "toolkit: ImpactSearcher.search_vector, whole": p50(lambda t: ours.search_vector(t, k), terms[:n]),
                "pyserini: LuceneImpactSearcher.search, whole (encoder memoised)": p50(
                    lambda i: [(h.docid, h.score) for h in reference.search(texts[i], k)], range(n)),
            }
        stages[f"k{k}"] = row
    cprof = {}
    for label, fn in (("pyserini", lambda i, k: [(h.docid, h.score) for h in reference.search(texts[i], k)]),
                      ("toolkit", lambda i, k: ours.search_vector(terms[i], k))):
        prof = cProfile.Profile()
        prof.enable()
        for i in range(n):
            fn(i, max(ks))
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(8)
        cprof[label] = buf.getvalue()
    reference.close()
    ours.close()
    return {"stages_p50_ms": stages, "cprofile_k%d" % max(ks): cprof}


# -- main ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", nargs="+", default=["cranfield", "squad-train"])
    parser.add_argument("--encoded", nargs="*", default=[], metavar="NAME=DIR",
                        help="encoded folder per collection (default benchmarks/results/perf-work/<name>-default)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-docs", type=int, default=None, help="documents indexed per collection (a prefix)")
    parser.add_argument("--max-queries", type=int, default=1000)
    parser.add_argument("--judged-only", nargs="*", default=["squad-train"], metavar="NAME",
                        help="collections whose queries are limited to those with every judged document indexed")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--warmup", type=int, default=30, help="untimed queries per system and k first")
    parser.add_argument("--seismic", nargs="*", default=[name for name in SEISMIC if name != "exact"],
                        choices=list(SEISMIC), help="Seismic settings to time (default: all but exact)")
    parser.add_argument("--profile", action="store_true", help="also break a Lucene impact query down")
    parser.add_argument("--quick", action="store_true", help="60 queries, 2,000 documents, 10 warm-up")
    parser.add_argument("--out", default=str(RESULTS / "search_latency"), help="results stem (.json, .md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_queries, args.warmup = 60, 10
        args.max_docs = args.max_docs or 2000
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.search import SplareQueryEncoder

    encoded_dirs = dict(item.split("=", 1) for item in args.encoded)
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    qe = SplareQueryEncoder(encoder)
    results: dict = {"command": shlex.join([Path(sys.executable).name, *sys.argv]), "python": platform.python_version(),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
                     "collections": {}}
    for name in args.collections:
        encoded = Path(encoded_dirs.get(name, WORK / f"{name}-default"))
        stage = WORK / "search-latency" / f"{name}-stage-{args.max_docs or 'all'}"
        jsonl_dir, corpus, meta, doc_ids = stage_prefix(encoded, args.max_docs, stage)
        if meta["model_fingerprint"] != encoder.fingerprint:
            raise SystemExit(f"{encoded} was encoded by model {meta['model']} ({meta['model_fingerprint']}), "
                             f"not by --model {args.model} ({encoder.fingerprint})")
        queries, rule = load_queries(name, set(doc_ids), args.max_queries, name in args.judged_only)
        logger.info("%s: %d documents, %d queries (%s)", name, len(doc_ids), len(queries), rule)
        encode_ms, terms = [], []
        for q in queries:  # one at a time: the latency a single query sees
            t0 = time.perf_counter_ns()
            vector = encoder.encode([q.text], kind="query")[0]
            encode_ms.append((time.perf_counter_ns() - t0) / 1e6)
            terms.append(encoder.terms(vector))
            qe._memo[q.text] = terms[-1]
        systems, built = build_systems(name, args, jsonl_dir, corpus, meta, len(doc_ids), queries, terms, encoder, qe)
        measured = measure(systems, len(queries), args.k, args.warmup)
        rows = summarise(name, measured, args.k)
        entry = {"documents": len(doc_ids), "queries": len(queries), "query_rule": rule,
                 "query_terms_p50": statistics.median(len(t) for t in terms),
                 "query_encode_p50_ms": statistics.median(encode_ms), "systems": rows, "built": built}
        if args.profile:
            entry["profile"] = profile_impact_path(Path(built["lucene_index"]), [q.text for q in queries], terms,
                                                   qe, args.k, min(len(terms), 200))
        results["collections"][name] = entry
        print(render_collection(name, entry, args.k))
    write_results(args.out, results, render(results, args.k), echo=False)  # tables printed above
    return 0


def render_collection(name: str, entry: dict, ks: list[int]) -> str:
    lines = [f"### {name}: {entry['documents']:,} documents, {entry['queries']:,} queries ({entry['query_rule']})",
             "",
             f"Query encoding (not in the timings below): p50 {entry['query_encode_p50_ms']:.1f} ms per query, "
             f"one at a time; p50 {entry['query_terms_p50']:g} terms per query.", ""]
    head = ["system"] + [f"p50 k={k} (ms)" for k in ks] + [f"p99 k={k}" for k in ks] + \
        [f"x BM25 k={k}" for k in ks] + [f"Lucene / it k={k}" for k in ks] + ["overlap@10"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system, row in entry["systems"].items():
        cells = [system] + [f"{row[f'p50_k{k}']:.2f}" for k in ks] + [f"{row[f'p99_k{k}']:.2f}" for k in ks] + \
            [f"{row[f'x_bm25_k{k}']:.2f}" for k in ks] + [f"{row[f'speedup_vs_lucene_k{k}']:.2f}" for k in ks] + \
            ["-" if row.get("overlap10") is None else f"{row['overlap10']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lucene = entry["systems"]["lucene"]
    lines += ["", "Toolkit Lucene path identical to Pyserini's (same documents, same scores, same order): " +
              ", ".join(f"k={k}: {lucene[f'identical_k{k}']:.1%} of queries" for k in ks) + "."]
    if "profile" in entry:
        lines += ["", "Where a Lucene impact query's time goes (p50 ms per query, pre-encoded queries):", ""]
        stages = entry["profile"]["stages_p50_ms"]
        lines += ["| stage | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for stage in stages[f"k{ks[0]}"]:
            lines.append(f"| {stage} | " + " | ".join(f"{stages[f'k{k}'][stage]:.2f}" for k in ks) + " |")
        lines += ["", "Opening the index (s): " + ", ".join(f"{a}: {b:.2f}" for a, b in stages["open_s"].items())]
    return "\n".join(lines) + "\n"


def render(results: dict, ks: list[int]) -> str:
    parts = ["# Search latency: BM25, Lucene impact (Pyserini and the toolkit's path), Seismic", "",
             f"Command: `{results['command']}` ({results['machine']}; Python {results['python']}).", "",
             "One process, one thread, every system on the same pre-encoded queries, interleaved in a "
             "rotating order per query after an untimed warm-up; latency from the encoded query to the "
             "hits as Python (docid, score) pairs. Reference for agreement: Pyserini's "
             "`LuceneImpactSearcher(min_idf=-1)` (exact). Targets (issue 11): Lucene p50 <= 1.5x BM25's; "
             "Seismic >= 5x faster than Lucene at overlap@10 >= 0.95.", ""]
    for name, entry in results["collections"].items():
        parts.append(render_collection(name, entry, ks))
        seismic = {s: b for s, b in entry["built"].items() if s.startswith("seismic-")}
        if seismic:
            parts.append("Seismic settings: " + "; ".join(
                f"`{s}`: {b['class']}, build {json.dumps(b['build'])}, search {b['search']}"
                for s, b in seismic.items()))
            parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
