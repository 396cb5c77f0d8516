"""KL training files from a BEIR folder and a dense teacher (``splare-lucene distill-data``).

For each training query (``qrels/<split>.tsv``, relevance > 0) one JSONL line, in the format
:mod:`splare_lucene.train.data` reads::

    {"query": "...", "positive": "...", "negatives": ["...", ...], "scores": [s_pos, s_neg1, ...],
     "qid": "q1", "doc_ids": ["d_pos", "d_neg1", ...], "sources": ["bm25", ..., "teacher", ...]}

* ``positive``: the query's most relevant judged document (ties: the smallest id);
* ``negatives``: ``bm25_negatives`` drawn at random from the top ``depth`` BM25 hits
  (:func:`splare_lucene.train.negatives.mine_bm25_negatives`, Anserini), then
  ``teacher_negatives`` from the top ``depth`` of the teacher's dense ranking of the whole corpus;
  every judged positive of the query, any document whose text equals a positive's (duplicates
  under another id), and repeats are left out. A query with fewer candidates than asked is
  skipped (and counted), so every line has the same number of negatives;
* ``scores``: aligned with ``[positive] + negatives``: ``score_scale x cos(q, d)``, the cosine of
  the teacher's L2-normalised embeddings (:mod:`splare_lucene.train.teacher`) times a scale.

Why a scale: ``train --loss kl`` turns teacher scores into targets with a plain softmax over each
query's candidates (:func:`splare_lucene.train.losses.kl_distillation`; the *student's* scores
are divided by ``--temperature``, the teacher's are not). Cosines lie in [-1, 1], so a softmax of
raw cosines is nearly uniform (over 9 candidates the largest possible probability ratio is
e^2 ~ 7.4, usually far less). The default scale 20 is the one all-MiniLM-L6-v2 was trained with:
its training script (``train_script.py`` of the model card) minimises cross-entropy over
``cosine x scale`` with ``--scale`` 20, so ``softmax(20 cos)`` is the teacher's own distribution
over candidates. The cosine of a line is ``score / score_scale`` (the scale is recorded in the
``.meta.json`` written beside the file).

Held-out queries (a dev split): a query is *held out* when ``holdout_rank(key) < holdout``,
where ``key`` is the id of its written positive (the smallest-id most relevant document) and
:func:`holdout_rank` maps the key's sha256 to [0, 1): deterministic, independent of the seed, of
``max_queries`` and of the machine; keyed by the document so that every question about one
passage (SQuAD has about five) is on the same side. Held-out queries are never written; their
qrels can be written to ``dev_qrels`` (a BEIR qrels TSV for ``evaluate --qrels``). Queries listed
in ``exclude`` are left out too (and not counted as held out).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ConfigError, InputError

logger = logging.getLogger(__name__)

DEFAULT_SCORE_SCALE = 20.0  # all-MiniLM-L6-v2's training scale (see the module docstring)
_SCORE_BLOCK = 1 << 26  # query x document cosines held at once (256 MB of float32)


def holdout_rank(key: str) -> float:
    """The first 8 bytes of sha256(``key`` in UTF-8) as a number in [0, 1)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2 ** 64


@dataclass(frozen=True)
class DistillOptions:
    """Settings of :func:`write_distillation_data` (all recorded in the ``.meta.json``).

    split: qrels split (``qrels/<split>.tsv``); max_queries: at most this many training queries
    (a seeded random subset of the eligible ones; None: all); bm25_negatives / teacher_negatives:
    negatives per query from each miner; depth: each miner's negatives are drawn from its top
    ``depth`` admissible hits; score_scale: scores are ``score_scale x cosine``; holdout: fraction
    of queries held out for a dev split (see the module docstring); seed: random choices;
    batch_size: teacher texts per forward pass.
    """

    split: str = "train"
    max_queries: int | None = None
    bm25_negatives: int = 4
    teacher_negatives: int = 4
    depth: int = 30
    score_scale: float = DEFAULT_SCORE_SCALE
    holdout: float = 0.0
    seed: int = 0
    batch_size: int = 64
    exclude: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.bm25_negatives < 0 or self.teacher_negatives < 0:
            raise ConfigError(f"negatives per miner must be >= 0; got bm25 {self.bm25_negatives}, "
                              f"teacher {self.teacher_negatives}")
        if self.bm25_negatives + self.teacher_negatives == 0:
            raise ConfigError("no negatives asked for: give --bm25-negatives and/or --teacher-negatives > 0")
        if self.depth < max(self.bm25_negatives, self.teacher_negatives):
            raise ConfigError(f"--depth {self.depth} is below the negatives drawn from one miner "
                              f"({max(self.bm25_negatives, self.teacher_negatives)}); raise --depth")
        if not self.score_scale > 0:
            raise ConfigError(f"score_scale must be > 0; got {self.score_scale}")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"holdout must be in [0, 1); got {self.holdout}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ConfigError(f"max_queries must be >= 1 or None; got {self.max_queries}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exclude"] = len(self.exclude)  # the count; the ids are the user's file
        return out


def read_id_list(path: str | os.PathLike) -> frozenset[str]:
    """Query ids, one per line (the first tab/space-separated field; blank lines and ``#``
    comments skipped; a BEIR qrels header ``query-id`` is skipped too).

    Raises:
        InputError: the file is missing or not UTF-8 (naming the file and line).
    """
    from ..textio import iter_lines

    p = Path(path)
    if not p.is_file():
        raise InputError("no such file (a list of query ids to exclude, one per line)", path=str(path))
    ids = set()
    for number, line in iter_lines(p):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        first = text.split()[0]
        if number == 1 and first == "query-id":
            continue
        ids.add(first)
    return frozenset(ids)


@dataclass
class DistillReport:
    """What was written and what it cost (also the ``.meta.json`` beside the file)."""

    output: str
    teacher: dict[str, Any]
    options: dict[str, Any]
    folder: str
    counts: dict[str, int]
    seconds: dict[str, float]
    bytes: int = 0
    holdout_rule: str = ""
    score: str = ""
    dev_qrels: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        c = self.counts
        return (f"wrote {c['written']} training queries x (1 + {c['negatives_per_query']}) candidates to "
                f"{self.output} ({self.bytes / 1e6:.1f} MB) in {self.seconds['total']:.0f} s; held out "
                f"{c['held_out']}, excluded {c['excluded']}, skipped {c['skipped_few_negatives']} "
                f"(too few negatives) and {c['skipped_no_positive']} (no positive in the corpus)")


def meta_path(output: str | os.PathLike) -> Path:
    """Where the record of a training file is written: ``<output>.meta.json``."""
    return Path(str(output) + ".meta.json")


def qrels_file(folder: Path, split: str) -> Path:
    """``folder/qrels/<split>.tsv``; InputError naming the splits there are when it is missing."""
    path = Path(folder) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.tsv")) if path.parent.is_dir() else []
        raise InputError(f"no qrels/{split}.tsv; distill-data needs a BEIR folder with corpus.jsonl, "
                         f"queries.jsonl and qrels/<split>.tsv (splits here: {', '.join(found) or 'none'}; "
                         "pick one with --split)", path=str(folder))
    return path


def written_positive(judged: dict[str, int], in_corpus) -> tuple[str | None, list[str]]:
    """(the written positive, every judged positive in the corpus): most relevant, then smallest id.

    ``judged``: one query's qrels {doc id: relevance}; ``in_corpus``: a container of the corpus's
    doc ids. The written positive is also the key of the held-out rule (:func:`holdout_rank`), so
    a dev split cut elsewhere (benchmarks/dev_split.py) calls this to hold out the same queries."""
    positives = sorted((d for d, rel in judged.items() if rel > 0 and d in in_corpus),
                       key=lambda d: (-judged[d], d))
    return (positives[0] if positives else None), positives


def _teacher_cache_key(info: dict[str, Any], corpus: dict[str, Any]) -> str:
    """Key of a corpus-embedding cache entry: the teacher (for a local directory, its files'
    names, sizes and mtimes too, so retrained weights are not mistaken for the old ones) and the
    corpus identity (size and sha256 of its ends; :func:`splare_lucene.engines.parts.corpus_identity`)."""
    teacher = dict(info)
    src = Path(teacher["source"])
    if teacher.get("weights_sha256") is None and src.is_dir():
        teacher["files"] = sorted((str(p.relative_to(src)), p.stat().st_size, p.stat().st_mtime_ns)
                                  for p in src.rglob("*") if p.is_file())
    body = json.dumps({"teacher": teacher, "corpus": {k: v for k, v in corpus.items() if k != "path"}},
                      sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:20]


def corpus_embeddings(teacher, folder: Path, ids: Sequence[str], texts: Sequence[str], *,
                      batch_size: int, cache_dir: Path | None, progress: bool = True):
    """(N, dim) float32 unit rows for the corpus, in ``ids`` order; read from / written to
    ``cache_dir`` (``<key>.npy`` + ``<key>.json`` with the ids' digest, both written atomically;
    an entry whose ids differ is recomputed). ``cache_dir`` None: no cache."""
    import numpy as np
    import torch

    from ..engines.parts import atomic_write_bytes, atomic_write_json, corpus_identity, ids_digest

    if cache_dir is None:
        return teacher.embed(texts, batch_size=batch_size, progress=progress, desc="teacher: corpus")
    key = _teacher_cache_key(teacher.info.to_dict(), corpus_identity(str(folder)))
    npy, record = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    digest = ids_digest(ids)
    if npy.is_file() and record.is_file():
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
            array = np.load(npy, allow_pickle=False)  # never unpickle a cache file
            if saved.get("ids_sha256") == digest and array.shape == (len(ids), teacher.info.dim):
                logger.info("teacher: corpus embeddings from the cache %s", npy)
                return torch.from_numpy(array.astype(np.float32, copy=False))
            logger.info("teacher: cache entry %s is for other documents; recomputing", npy)
        except (OSError, ValueError) as exc:  # a damaged entry: recompute and replace it
            logger.warning("teacher: unreadable cache entry %s (%s); recomputing", npy, exc)
    emb = teacher.embed(texts, batch_size=batch_size, progress=progress, desc="teacher: corpus")
    import io

    buffer = io.BytesIO()
    np.save(buffer, emb.numpy(), allow_pickle=False)
    atomic_write_bytes(npy, buffer.getvalue())
    atomic_write_json(record, {"ids_sha256": digest, "documents": len(ids), "teacher": teacher.info.to_dict(),
                               "folder": str(folder)})
    return emb


def _write_lines_atomically(output: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` to ``output`` (gzip when the name ends in .gz) through
    :func:`splare_lucene.engines.parts.atomic_writer`: a crash or an error leaves the old file
    (or none), never a half-written one. Returns the bytes written."""
    from ..engines.parts import atomic_writer

    with atomic_writer(output) as raw:
        sink = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if output.name.endswith(".gz") else raw
        try:
            for line in lines:
                sink.write(line.encode("utf-8"))
        finally:
            if sink is not raw:
                sink.close()
    return output.stat().st_size


def write_distillation_data(folder: str | os.PathLike, output: str | os.PathLike, teacher,
                            options: DistillOptions = DistillOptions(), *, threads: int = 1,
                            bm25_cache_dir: Path | None = None, embedding_cache_dir: Path | None = None,
                            dev_qrels: str | os.PathLike | None = None, progress: bool = True) -> DistillReport:
    """Write the KL training file ``output`` (and ``<output>.meta.json``; ``dev_qrels`` when
    given) from the BEIR folder ``folder`` with ``teacher`` (a :class:`~.teacher.DenseTeacher`).
    See the module docstring for the format, the scores and the held-out rule.

    Raises:
        InputError: no ``qrels/<split>.tsv``, no queries with a positive in the corpus, or no
            query left with enough negatives (each message says which and the fix).
    """
    import torch

    from ..corpus import read_documents, read_queries
    from ..engines.parts import atomic_write_bytes, atomic_write_json
    from ..evaluate import read_qrels
    from .negatives import mine_bm25_negatives

    t0 = time.perf_counter()
    folder, output = Path(folder), Path(output)
    qrels = read_qrels(qrels_file(folder, options.split))
    docs = list(read_documents(str(folder)))
    position = {d.id: i for i, d in enumerate(docs)}
    queries = {q.id: q.text for q in read_queries(str(folder)) if q.id in qrels}
    counts = dict(qrels_queries=len(qrels), documents=len(docs), skipped_no_positive=0, held_out=0,
                  excluded=0, eligible=0, skipped_few_negatives=0, written=0,
                  negatives_per_query=options.bm25_negatives + options.teacher_negatives)
    chosen: dict[str, tuple[str, list[str]]] = {}  # qid -> (written positive, all positives)
    held_out: list[str] = []
    for qid in sorted(queries):
        pos, positives = written_positive(qrels[qid], position)
        if pos is None:
            counts["skipped_no_positive"] += 1
        elif qid in options.exclude:
            counts["excluded"] += 1
        elif holdout_rank(pos) < options.holdout:
            held_out.append(qid)
        else:
            chosen[qid] = (pos, positives)
    counts["held_out"] = len(held_out)
    counts["eligible"] = len(chosen)
    if not chosen:
        raise InputError(f"no training query left: {counts['skipped_no_positive']} of {len(queries)} queries of "
                         f"qrels/{options.split}.tsv have no positive document in the corpus, "
                         f"{counts['excluded']} are excluded and {counts['held_out']} held out",
                         path=str(folder))
    qids = sorted(chosen)
    random.Random(options.seed).shuffle(qids)
    if options.max_queries:
        qids = qids[:options.max_queries]
    max_pos = max(len(chosen[q][1]) for q in qids)
    logger.info("%d queries with a positive: %d for training (%d used), %d held out, %d excluded, %d without "
                "a positive in the corpus", len(queries), len(chosen), len(qids), len(held_out),
                counts["excluded"], counts["skipped_no_positive"])

    seconds: dict[str, float] = {}
    bm25: dict[str, list[str]] = {}
    if options.bm25_negatives:
        t = time.perf_counter()
        bm25 = mine_bm25_negatives(folder, {q: queries[q] for q in qids}, depth=options.depth + max_pos,
                                   threads=threads, cache_dir=bm25_cache_dir)
        seconds["bm25"] = time.perf_counter() - t
        logger.info("BM25: top %d of %d queries mined in %.0f s", options.depth + max_pos, len(qids),
                    seconds["bm25"])
    t = time.perf_counter()
    doc_emb = corpus_embeddings(teacher, folder, [d.id for d in docs], [d.text for d in docs],
                                batch_size=options.batch_size, cache_dir=embedding_cache_dir,
                                progress=progress)  # (N, dim)
    seconds["teacher_corpus"] = time.perf_counter() - t
    logger.info("teacher: %d documents in %.0f s", len(docs), seconds["teacher_corpus"])
    t = time.perf_counter()
    q_emb = teacher.embed([queries[q] for q in qids], batch_size=options.batch_size, progress=progress,
                          desc="teacher: queries")  # (Q, dim)
    seconds["teacher_queries"] = time.perf_counter() - t

    t = time.perf_counter()
    # dense candidates: enough to survive removing positives, duplicates and the BM25 picks
    k = min(len(docs), options.depth + max_pos + options.bm25_negatives + 8)
    dense: dict[str, list[int]] = {}
    if options.teacher_negatives:
        block = max(1, _SCORE_BLOCK // len(docs))
        for s in range(0, len(qids), block):
            sims = q_emb[s:s + block] @ doc_emb.T  # (b, N) cosines
            top = torch.topk(sims, k, dim=1).indices.tolist()
            for qid, row in zip(qids[s:s + block], top):
                dense[qid] = row
    seconds["teacher_mining"] = time.perf_counter() - t

    def lines() -> Iterable[str]:
        for qi, qid in enumerate(qids):
            pos, positives = chosen[qid]
            rng = random.Random(f"{options.seed}:{qid}")  # per query: independent of order and subset
            taken_ids = set(positives)
            taken_texts = {docs[position[p]].text for p in positives}

            def admissible(candidates: Iterable[str]) -> list[str]:
                pool, texts = [], set()
                for d in candidates:
                    text = docs[position[d]].text if d in position else None
                    if text is None or d in taken_ids or text in taken_texts or text in texts:
                        continue
                    pool.append(d)
                    texts.add(text)
                    if len(pool) == options.depth:
                        break
                return pool

            negatives: list[str] = []
            sources: list[str] = []
            for source, n, candidates in (
                    ("bm25", options.bm25_negatives, bm25.get(qid, [])),
                    ("teacher", options.teacher_negatives, (docs[i].id for i in dense.get(qid, [])))):
                if not n:
                    continue
                pool = admissible(candidates)
                if len(pool) < n:
                    break
                picked = sorted(rng.sample(range(len(pool)), n))
                for i in picked:
                    negatives.append(pool[i])
                    sources.append(source)
                    taken_ids.add(pool[i])
                    taken_texts.add(docs[position[pool[i]]].text)
            if len(negatives) < counts["negatives_per_query"]:
                counts["skipped_few_negatives"] += 1
                continue
            ids = [pos] + negatives
            rows = torch.tensor([position[d] for d in ids])
            cos = (doc_emb[rows] @ q_emb[qi]).tolist()  # (1 + n,) cosines
            counts["written"] += 1
            yield json.dumps({"query": queries[qid], "positive": docs[position[pos]].text,
                              "negatives": [docs[position[d]].text for d in negatives],
                              "scores": [round(options.score_scale * c, 5) for c in cos],
                              "qid": qid, "doc_ids": ids, "sources": sources}, ensure_ascii=False) + "\n"

    t = time.perf_counter()
    size = _write_lines_atomically(output, lines())
    seconds["write"] = time.perf_counter() - t
    if counts["written"] == 0:
        output.unlink(missing_ok=True)
        raise InputError(f"no query had {counts['negatives_per_query']} admissible negatives (depth "
                         f"{options.depth}, {len(docs)} documents): lower --bm25-negatives/--teacher-negatives "
                         "or raise --depth", path=str(folder))
    if counts["skipped_few_negatives"]:
        logger.warning("%d of %d queries skipped: fewer than %d admissible negatives in the top %d of a miner",
                       counts["skipped_few_negatives"], len(qids), counts["negatives_per_query"], options.depth)
    written_dev = None
    if dev_qrels is not None:
        body = "query-id\tcorpus-id\tscore\n" + "".join(
            f"{q}\t{d}\t{rel}\n" for q in sorted(held_out) for d, rel in sorted(qrels[q].items()))
        atomic_write_bytes(Path(dev_qrels), body.encode("utf-8"))
        written_dev = str(dev_qrels)
    seconds["total"] = time.perf_counter() - t0
    report = DistillReport(
        output=str(output), teacher=teacher.info.to_dict(), options=options.to_dict(), folder=str(folder),
        counts=counts, seconds={k: round(v, 2) for k, v in seconds.items()}, bytes=size,
        holdout_rule=(f"held out iff sha256(id of the written positive)[:8] / 2^64 < {options.holdout}"),
        score=f"{options.score_scale} x cosine of L2-normalised teacher embeddings", dev_qrels=written_dev)
    atomic_write_json(meta_path(output), report.to_dict())
    logger.info("%s", report.describe())
    return report
