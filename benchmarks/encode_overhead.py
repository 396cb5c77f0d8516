"""Document encoding against the backbone's forward pass alone, on the same batches (issue 11, section 4).

Target: encode time <= 1.10x the forward pass of the cut backbone. On the first ``--docs`` N
non-empty documents of a corpus (default cranfield from ``../shared/data``), default model, one
torch thread, batches of ``--batch-size`` (16) formed exactly as ``encode`` forms them
(:func:`splare_lucene.engines.local.encode_part`: each part of ``--part-size`` documents sorted
by length, :func:`splare_lucene.encoder.length_sorted_batches`, cut into batches), per batch:

* ``forward``: :func:`splare_lucene.backbone.hidden_states` alone (the model cut after block L,
  exactly what the encoder runs), on ids tokenized beforehand; tokenizing is timed apart
  (``tokenize``);
* ``encode``: ``SplareEncoder.encode(texts, kind="document")`` (tokenize + forward + SAE + pooling
  + top-k + sparse vectors) followed by ``encoder.terms`` for each vector (quantize + pseudo-
  tokens): what ``encode_part`` runs per batch;
* ``staged``: the same steps called one by one with a clock between them (the breakdown; its
  output is checked equal to ``encode``'s on every batch, so it measures the real path).

The three run on each batch in a rotating order (batch i starts with measurement i mod 3), after
an untimed warm-up on the first ``--warmup`` batches, so that load changes on a shared machine hit
all three. Then ``encode_local`` (the ``encode`` command's engine: corpus read, parts, manifest,
summary written to disk) runs on the same N documents (written to a JSONL corpus first), timed as a
whole; ``--rounds`` alternates the per-batch pass and the ``encode_local`` run (medians reported).
Ratios: encode / forward, (encode / forward incl. tokenize), encode_local / forward. Breakdown of
the rest: tokenize, SAE pooling (of which the SAE matmul measured alone on the same hidden states),
document top-k, sparse conversion, quantize, pseudo-tokens, and per part JSON and gzip
(``render_part``'s two steps, timed on the encoded records). ``--profile`` adds cProfile's top
functions of ``encode`` on a few batches.

    .venv/bin/python benchmarks/encode_overhead.py                 # 512 documents, 2 rounds
    .venv/bin/python benchmarks/encode_overhead.py --quick         # 48 documents, 1 round

Writes ``benchmarks/results/encode_overhead.{json,md}`` with the command (``--out`` to change
it). Work files (the JSONL corpus, encode outputs) go to ``benchmarks/results/perf-work/
encode-overhead/`` (gitignored).
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
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_results.py
from _results import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
WORK = REPO / "benchmarks" / "results" / "perf-work" / "encode-overhead"
RESULTS = REPO / "benchmarks" / "results"
TARGET = 1.10
MEASURES = ("forward", "encode", "staged")

logger = logging.getLogger("encode_overhead")


def clock() -> float:
    return time.perf_counter()


# -- inputs --------------------------------------------------------------------------------------

def first_documents(corpus: str, n: int) -> list:
    """The first ``n`` non-empty documents of ``corpus`` (``Document(id, text)``, as ``encode
    --allow-empty`` reads them). Raises SystemExit when the corpus has fewer."""
    from splare_lucene.corpus import read_documents

    docs = []
    for doc in read_documents(corpus, allow_empty=True):
        docs.append(doc)
        if len(docs) == n:
            return docs
    raise SystemExit(f"{corpus} has only {len(docs)} non-empty documents; pass --docs {len(docs)} or fewer")


def encode_batches(docs: list, batch_size: int, part_size: int) -> list[list]:
    """The batches ``encode`` runs, in its order: per part of ``part_size`` documents,
    ``length_sorted_batches`` over the whole part (``encode_part``'s window), without the
    window-boundary markers. Each batch: a list of Documents."""
    from splare_lucene.encoder import length_sorted_batches

    batches = []
    for start in range(0, len(docs), part_size):
        part = docs[start:start + part_size]
        for batch in length_sorted_batches(part, lambda d: d.text, batch_size, window=max(1, len(part))):
            if batch:
                batches.append([d for _, d in batch])
    return batches


def write_corpus(docs: list, path: Path) -> None:
    """``docs`` as an ``id/contents`` JSONL corpus that ``read_documents`` gives back unchanged
    (checked: SystemExit otherwise)."""
    from splare_lucene.corpus import read_documents

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d.id, "contents": d.text}, ensure_ascii=False) + "\n")
    if list(read_documents(str(path))) != list(docs):
        raise SystemExit(f"{path}: the documents read back differ from those written (corpus reader changed?)")


# -- the three per-batch measurements ------------------------------------------------------------

def run_forward(encoder, texts: list[str]) -> dict[str, float]:
    """Tokenize (timed apart), then the cut backbone's forward alone."""
    import torch

    from splare_lucene.backbone import hidden_states, tokenize

    side = encoder.config.side("document")
    texts = [side.prefix + t for t in texts] if side.prefix else texts
    with torch.inference_mode():
        t0 = clock()
        ids, attn, _ = tokenize(encoder.backbone, texts, side.max_length, encoder.device,
                                encoder.config.pool_special_tokens)
        t1 = clock()
        hidden_states(encoder.backbone, ids, attn, encoder.config.bidirectional)
        t2 = clock()
    return {"tokenize": t1 - t0, "forward": t2 - t1, "tokens": int(ids.numel()), "real_tokens": int(attn.sum())}


def run_encode(encoder, texts: list[str]) -> tuple[dict[str, float], list[dict[str, int]]]:
    """What ``encode_part`` runs per batch: ``encode`` then ``terms`` of each vector."""
    t0 = clock()
    vectors = encoder.encode(texts, kind="document")
    t1 = clock()
    terms = [encoder.terms(v) for v in vectors]
    t2 = clock()
    return {"encode": t1 - t0, "terms": t2 - t1}, terms


def run_staged(encoder, texts: list[str]) -> tuple[dict[str, float], list[dict[str, int]]]:
    """``SplareEncoder.pooled`` + ``encode`` + ``terms`` step by step (same calls, same order),
    with the SAE matmul also timed alone on the same hidden states (not part of the path)."""
    import torch

    from splare_lucene.backbone import hidden_states, tokenize
    from splare_lucene.encoder import _to_sparse
    from splare_lucene.pooling import top_k

    side = encoder.config.side("document")
    texts = [side.prefix + t for t in texts] if side.prefix else texts
    t: dict[str, float] = {}
    with torch.inference_mode():
        t0 = clock()
        ids, attn, pool_mask = tokenize(encoder.backbone, list(texts), side.max_length, encoder.device,
                                        encoder.config.pool_special_tokens)
        t1 = clock()
        hidden = hidden_states(encoder.backbone, ids, attn, encoder.config.bidirectional)  # (B, T, d)
        t2 = clock()
        pooled = encoder.head.pool(hidden, pool_mask)  # (B, d_sae)
        t3 = clock()
        pooled = top_k(pooled, side.top_k).float()
        t4 = clock()
        vectors = [_to_sparse(row) for row in pooled]
        t5 = clock()
        sae = getattr(encoder.head, "W_enc", None)
        if sae is not None:  # the SAE's (B*T, d) x (d, d_sae) product alone, for the breakdown
            x = hidden.reshape(-1, hidden.shape[-1]).to(sae.dtype)
            m0 = clock()
            x @ sae
            t["sae_matmul_alone"] = clock() - m0
    t6 = clock()
    impacts = [encoder.quantize(v) for v in vectors]
    t7 = clock()
    terms = [encoder.vocab.to_terms(q.indices, q.weights) for q in impacts]
    t8 = clock()
    t.update(tokenize=t1 - t0, forward=t2 - t1, sae_pool=t3 - t2, doc_top_k=t4 - t3, to_sparse=t5 - t4,
             quantize=t7 - t6, to_terms=t8 - t7)
    return t, terms


def batch_pass(encoder, batches: list[list], warmup: int) -> tuple[list[dict], list]:
    """The three measurements on every batch, rotating their order; returns per-batch timings and
    the records (id, text, terms) of ``encode`` (for the JSON/gzip step). Raises RuntimeError when
    the staged path's terms differ from ``encode``'s (the breakdown would not be of the real path)."""
    for batch in batches[:warmup]:  # untimed: first-call allocations, lazy imports
        texts = [d.text for d in batch]
        run_forward(encoder, texts), run_encode(encoder, texts), run_staged(encoder, texts)
    rows, records = [], []
    for i, batch in enumerate(batches):
        texts = [d.text for d in batch]
        row: dict = {"batch": i, "documents": len(batch)}
        terms_encode = terms_staged = None
        for j in range(len(MEASURES)):
            which = MEASURES[(i + j) % len(MEASURES)]
            if which == "forward":
                f = run_forward(encoder, texts)
                row.update(tokens=f["tokens"], real_tokens=f["real_tokens"], forward=f["forward"],
                           tokenize=f["tokenize"])
            elif which == "encode":
                e, terms_encode = run_encode(encoder, texts)
                row.update(e)
            else:
                s, terms_staged = run_staged(encoder, texts)
                row["staged"] = s
        if terms_staged != terms_encode:
            raise RuntimeError(f"batch {i}: the staged path's vectors differ from SplareEncoder.encode's; "
                               "run_staged no longer mirrors SplareEncoder.pooled/encode (update it)")
        records += [(d.id, d.text, v) for d, v in zip(batch, terms_encode)]
        rows.append(row)
        logger.info("batch %d/%d (%d tokens): forward %.3f s, encode %.3f s", i + 1, len(batches), row["tokens"],
                    row["forward"], row["encode"])
    return rows, records


def render_costs(records: list, part_size: int) -> dict[str, float]:
    """``render_part``'s two steps on the encoded records, per part: JSON lines, then gzip (level
    1, as parts are written). Seconds in all."""
    from splare_lucene.engines.parts import render_part

    js = gz = 0.0
    for start in range(0, len(records), part_size):
        part = records[start:start + part_size]
        t0 = clock()
        text = "".join(json.dumps({"id": i, "contents": c, "vector": v}, ensure_ascii=False) + "\n"
                       for i, c, v in part)
        t1 = clock()
        data = gzip.compress(text.encode("utf-8"), compresslevel=1, mtime=0)
        t2 = clock()
        if data != render_part(part):  # what was timed is what parts hold
            raise RuntimeError("render_costs no longer mirrors engines.parts.render_part (update it)")
        js, gz = js + t1 - t0, gz + t2 - t1
    return {"json": js, "gzip": gz}


def run_encode_local(encoder, corpus: Path, out: Path, batch_size: int, part_size: int) -> float:
    """``splare-lucene encode`` 's engine on ``corpus`` into a fresh ``out``; wall seconds."""
    from splare_lucene.engines.local import encode_local

    shutil.rmtree(out, ignore_errors=True)
    t0 = clock()
    encode_local(encoder, str(corpus), out, part_size=part_size, batch_size=batch_size, model_name="default",
                 progress=False)
    return clock() - t0


def profile_encode(encoder, batches: list[list], n: int) -> list[dict]:
    """cProfile of ``run_encode`` on ``n`` batches: the top 20 functions by own time."""
    prof = cProfile.Profile()
    prof.enable()
    for batch in batches[:n]:
        run_encode(encoder, [d.text for d in batch])
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": nc, "own_s": tt, "cumulative_s": ct})
    return sorted(rows, key=lambda r: -r["own_s"])[:20]


# -- summary -------------------------------------------------------------------------------------

def summarise(rounds: list[dict], records_render: dict, docs: int) -> dict:
    """Totals per round, then medians over rounds; ratios and the breakdown of encode - forward."""
    per_round = []
    for r in rounds:
        rows = r["batches"]
        total = {k: sum(row[k] for row in rows) for k in ("forward", "tokenize", "encode", "terms")}
        staged_keys = sorted({k for row in rows for k in row["staged"]})
        staged = {k: sum(row["staged"].get(k, 0.0) for row in rows) for k in staged_keys}
        per_round.append({"totals": total, "staged": staged, "encode_local": r["encode_local"]})

    def med(get) -> float:
        return statistics.median(get(x) for x in per_round)

    forward = med(lambda x: x["totals"]["forward"])
    encode = med(lambda x: x["totals"]["encode"] + x["totals"]["terms"])
    encode_only = med(lambda x: x["totals"]["encode"])
    tokenize = med(lambda x: x["totals"]["tokenize"])
    local = med(lambda x: x["encode_local"])
    staged = {k: med(lambda x, k=k: x["staged"].get(k, 0.0)) for k in per_round[0]["staged"]}
    breakdown = {k: staged[k] for k in ("tokenize", "sae_pool", "doc_top_k", "to_sparse", "quantize", "to_terms")
                 if k in staged}
    breakdown.update(records_render)
    return {
        "documents": docs,
        "seconds": {"forward": forward, "tokenize": tokenize, "encode": encode_only, "encode_terms": encode,
                    "encode_local": local, "staged_forward": staged.get("forward")},
        "ratios": {"encode_over_forward": encode / forward,
                   "encode_over_forward_and_tokenize": encode / (forward + tokenize),
                   "encode_local_over_forward": local / forward},
        "breakdown_s": breakdown,
        "sae_matmul_alone_s": staged.get("sae_matmul_alone"),
        "unexplained_encode_local_s": local - encode - records_render["json"] - records_render["gzip"],
        "target": TARGET,
        "per_round": per_round,
    }


def render(results: dict) -> str:
    s = results["summary"]
    sec, ratio, br = s["seconds"], s["ratios"], s["breakdown_s"]
    n = s["documents"]
    real = f"{results['real_tokens']:,}" if "real_tokens" in results else "n/a"

    def ms(x: float) -> str:
        return f"{1000 * x / n:.2f}"

    lines = ["# Encode time against the backbone's forward pass", "",
             f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}; {results['when']}; torch {results['torch']}, one thread", "",
             f"{n} documents of {results['corpus']} (default model, batch {results['batch_size']}, parts of "
             f"{results['part_size']}, length-sorted as `encode` sorts them; {results['batches']} batches, "
             f"{results['tokens']:,} tokens with padding, {real} without); medians over {results['rounds']} rounds. "
             f"Target: encode <= {TARGET:.2f}x forward.", "",
             "| what | seconds | ms/document | x forward |", "|---|---:|---:|---:|",
             f"| backbone forward alone (cut at layer {results['layer']}) | {sec['forward']:.2f} | "
             f"{ms(sec['forward'])} | 1.00 |",
             f"| tokenize (apart) | {sec['tokenize']:.2f} | {ms(sec['tokenize'])} | "
             f"{sec['tokenize'] / sec['forward']:.3f} |",
             f"| `SplareEncoder.encode` + `terms` per batch | {sec['encode_terms']:.2f} | {ms(sec['encode_terms'])} | "
             f"**{ratio['encode_over_forward']:.3f}** |",
             f"| `encode_local` (the `encode` command's engine, parts written) | {sec['encode_local']:.2f} | "
             f"{ms(sec['encode_local'])} | {ratio['encode_local_over_forward']:.3f} |", "",
             f"Encode over forward + tokenize: {ratio['encode_over_forward_and_tokenize']:.3f}x.", "",
             "Where the rest goes (staged run of the same steps, same batches; JSON and gzip on the encoded "
             "records as parts are rendered):", "",
             "| step | seconds | ms/document | % of forward |", "|---|---:|---:|---:|"]
    names = {"tokenize": "tokenize", "sae_pool": "SAE pre-activations + per-token top-k + max-pool (fused)",
             "doc_top_k": "document top-k", "to_sparse": "sparse vectors (nonzero, sort, to numpy)",
             "quantize": "quantize", "to_terms": "pseudo-tokens", "json": "JSON lines (per part)",
             "gzip": "gzip level 1 (per part)"}
    for key, value in br.items():
        lines.append(f"| {names.get(key, key)} | {value:.3f} | {ms(value)} | {100 * value / sec['forward']:.1f}% |")
    if s.get("sae_matmul_alone_s") is not None:
        lines += ["", f"Of the SAE pooling, the (B*T, d) x (d, d_sae) matmul alone on the same hidden states: "
                      f"{s['sae_matmul_alone_s']:.3f} s ({100 * s['sae_matmul_alone_s'] / sec['forward']:.1f}% of "
                      "forward); the rest is the per-token top-k and the max."]
    lines += ["", f"`encode_local` beyond encode + JSON + gzip (corpus reading, fsync, manifests): "
                  f"{s['unexplained_encode_local_s']:.2f} s (it runs apart from the per-batch pass, so load "
                  "changes between the two show here; a negative value is such noise).", ""]
    verdict = ("within" if s["ratios"]["encode_over_forward"] <= TARGET else "above")
    lines += [f"Verdict: encode/forward {ratio['encode_over_forward']:.3f}x is {verdict} the {TARGET:.2f}x target.", ""]
    if results.get("profile"):
        lines += ["cProfile of `encode` + `terms` (top functions by own time):", "",
                  "| function | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
        for row in results["profile"][:12]:
            lines.append(f"| `{row['function']}` | {row['calls']} | {row['own_s']:.3f} | {row['cumulative_s']:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(DATA / "cranfield"), help="corpus (default ../shared/data/cranfield)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--docs", type=int, default=512, help="documents (the first non-empty ones; default 512)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--part-size", type=int, default=None,
                        help="documents per part (default: encode's, 2000)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the per-batch pass and encode_local")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument("--profile", action="store_true", help="cProfile of encode on a few batches")
    parser.add_argument("--quick", action="store_true", help="48 documents, 1 round, 1 warm-up batch")
    parser.add_argument("--out", default=str(RESULTS / "encode_overhead"), help="results stem (.json, .md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.rounds, args.warmup = min(args.docs, 48), 1, 1
    if min(args.docs, args.batch_size, args.rounds) < 1 or args.warmup < 0 or (args.part_size or 1) < 1:
        parser.error("--docs, --batch-size, --rounds, --part-size must be >= 1 and --warmup >= 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch loads: one thread, as the figures say
    import torch

    torch.set_num_threads(1)
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.parts import DEFAULT_PART_SIZE

    part_size = args.part_size or DEFAULT_PART_SIZE
    docs = first_documents(args.corpus, args.docs)
    batches = encode_batches(docs, args.batch_size, part_size)
    corpus_file = WORK / f"corpus-{args.docs}.jsonl"
    write_corpus(docs, corpus_file)
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu", dtype="float32")
    rounds, records = [], []
    for r in range(args.rounds):
        rows, records = batch_pass(encoder, batches, args.warmup if r == 0 else 0)
        local = run_encode_local(encoder, corpus_file, WORK / "encoded", args.batch_size, part_size)
        logger.info("round %d: forward %.2f s, encode %.2f s, encode_local %.2f s", r + 1,
                    sum(x["forward"] for x in rows), sum(x["encode"] + x["terms"] for x in rows), local)
        rounds.append({"batches": rows, "encode_local": local})
    render_s = render_costs(records, part_size)
    summary = summarise(rounds, render_s, len(docs))
    results = {"command": shlex.join([Path(sys.executable).name, *sys.argv]), "python": platform.python_version(),
               "torch": torch.__version__, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
               "corpus": args.corpus, "model": args.model, "fingerprint": encoder.fingerprint,
               "layer": encoder.config.layer, "batch_size": args.batch_size, "part_size": part_size,
               "rounds": args.rounds, "batches": len(batches),
               "tokens": sum(row["tokens"] for row in rounds[0]["batches"]),
               "real_tokens": sum(row["real_tokens"] for row in rounds[0]["batches"]), "summary": summary}
    if args.profile:
        results["profile"] = profile_encode(encoder, batches, min(len(batches), 4))
    write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
