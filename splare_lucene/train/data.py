"""Training examples: a query, its candidates (positive first, then negatives), teacher scores.

Sources:

* JSONL: ``{"query": str, "positive": str, "negatives": [str, ...], "scores": [float, ...]}``
  (``positives`` may replace ``positive``; ``scores``/``teacher_scores``, when present, are aligned
  with ``[positive] + negatives`` and enable KL distillation);
* a BEIR folder with ``qrels/train.tsv`` (or another ``--split``): positives from the qrels, hard
  negatives mined with BM25 (Pyserini) from the folder's corpus;
* ``irds:<id>`` for ir_datasets with docpairs (e.g. ``irds:msmarco-passage/train/triples-small``).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainExample:
    query: str
    docs: tuple[str, ...]  # positive first, then negatives
    scores: tuple[float, ...] | None = None  # teacher scores aligned with docs


def _texts(value: object, key: str, path: Path, line: int) -> list[str]:
    """A JSON string or array of strings -> list of texts; anything else is an InputError (a
    number, an object or a nested array is not ``str()``-ed into a training text)."""
    from ..textio import json_kind

    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"{key!r} must be a string or an array of strings; found {json_kind(item)} "
                             f"{item!r:.60}", str(path), line)
    return list(items)


def _scores(value: object, path: Path, line: int) -> list[float]:
    from ..textio import json_kind

    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise InputError(f"'scores' must be an array of numbers; got {json_kind(value)} {value!r:.60}",
                         str(path), line)
    # Python's json reads NaN, Infinity and -Infinity: one of them makes the KL loss NaN, and the
    # LoRA update then empties every vector (a model that retrieves nothing, written without error)
    bad = [i for i, v in enumerate(value) if not math.isfinite(v)]
    if bad:
        raise InputError(f"'scores' must be finite numbers; value {bad[0]} of {len(value)} is {value[bad[0]]} "
                         f"(a teacher that failed on that candidate): rescore the line or drop it",
                         str(path), line)
    return [float(v) for v in value]


def _jsonl_examples(path: Path, n_negatives: int, rng: random.Random,
                    most_negatives: list[int] | None = None) -> Iterator[TrainExample]:
    """Examples from a JSONL file, read by :func:`splare_lucene.textio.iter_jsonl` (gzip, strict
    UTF-8, BOM and CR dropped); every error names the file and line. ``n_negatives`` of each
    line's negatives are picked at random; ``most_negatives[0]``, when given, is raised to the
    largest number of negatives a line holds."""
    from ..textio import iter_jsonl

    for line_no, obj in iter_jsonl(path):
        if "query" not in obj:
            raise InputError("expected an object with 'query', 'positive' and 'negatives'", str(path), line_no)
        query = _texts(obj["query"], "query", path, line_no)
        if len(query) != 1:
            raise InputError("'query' must be one string", str(path), line_no)
        key = "positives" if obj.get("positives") else "positive"
        positives = _texts(obj[key], key, path, line_no) if key in obj else []
        negatives = _texts(obj.get("negatives") or [], "negatives", path, line_no)
        if not positives:
            raise InputError("no 'positive' (or 'positives')", str(path), line_no)
        if len(negatives) < n_negatives:
            raise InputError(f"{len(negatives)} negatives; --negatives asks for {n_negatives}", str(path), line_no)
        raw_scores = obj.get("scores", obj.get("teacher_scores"))
        scores = None if raw_scores is None else _scores(raw_scores, path, line_no)
        if scores is not None and len(scores) != 1 + len(negatives):
            raise InputError(f"'scores' has {len(scores)} values; expected 1 + {len(negatives)} "
                             "(positive then negatives)", str(path), line_no)
        if most_negatives is not None:
            most_negatives[0] = max(most_negatives[0], len(negatives))
        pick = sorted(rng.sample(range(len(negatives)), n_negatives))
        docs = (positives[0],) + tuple(negatives[i] for i in pick)
        picked_scores = None if scores is None else (scores[0],) + tuple(scores[1 + i] for i in pick)
        yield TrainExample(query[0], docs, picked_scores)


def beir_examples(folder: Path, n_negatives: int, *, split: str = "train", max_queries: int | None = None,
                  seed: int = 0, bm25_depth: int = 50, threads: int = 1, cache_dir: Path | None = None
                  ) -> list[TrainExample]:
    """Positives from qrels; negatives = top BM25 hits that are not positives (mined once)."""
    from ..corpus import read_documents, read_queries
    from ..evaluate import read_qrels
    from .negatives import mine_bm25_negatives

    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InputError(f"no qrels/{split}.tsv; a BEIR training folder needs corpus.jsonl, "
                         "queries.jsonl and qrels/<split>.tsv", path=str(folder))
    qrels = read_qrels(qrels_path)
    queries = {q.id: q.text for q in read_queries(str(folder)) if q.id in qrels}
    qids = sorted(queries)
    rng = random.Random(seed)
    rng.shuffle(qids)
    if max_queries:
        qids = qids[:max_queries]
    corpus = {d.id: d.text for d in read_documents(str(folder))}
    negatives = mine_bm25_negatives(folder, {q: queries[q] for q in qids}, depth=bm25_depth,
                                    threads=threads, cache_dir=cache_dir)
    examples = []
    for q in qids:
        positives = [d for d, rel in qrels[q].items() if rel > 0 and d in corpus]
        pool = [d for d in negatives.get(q, []) if d not in qrels[q]]
        if not positives or len(pool) < n_negatives:
            continue
        picked = rng.sample(pool[: max(n_negatives, 20)], n_negatives)
        examples.append(TrainExample(queries[q], (corpus[positives[0]],) + tuple(corpus[d] for d in picked)))
    if not examples:
        raise InputError("no usable training examples (queries need a positive and enough BM25 negatives)",
                         path=str(folder))
    logger.info("%d training examples from %s (%d BM25 negatives each)", len(examples), folder, n_negatives)
    return examples


def irds_examples(dataset_id: str, n_negatives: int, max_queries: int | None, seed: int) -> list[TrainExample]:
    import ir_datasets

    dataset = ir_datasets.load(dataset_id)
    if not dataset.has_docpairs():
        raise InputError(f"ir_datasets {dataset_id!r} has no docpairs (query, positive, negative); "
                         "use a BEIR folder with qrels/train.tsv instead")
    if n_negatives != 1:
        raise InputError("ir_datasets docpairs carry one negative each: use --negatives 1")
    queries = {q.query_id: q.default_text() for q in dataset.queries_iter()}
    store = dataset.docs_store()
    examples = []
    for pair in dataset.docpairs_iter():
        examples.append(TrainExample(queries[pair.query_id], (store.get(pair.doc_id_a).default_text(),
                                                              store.get(pair.doc_id_b).default_text())))
        if max_queries and len(examples) >= max_queries:
            break
    random.Random(seed).shuffle(examples)
    return examples


def load_examples(source: str, n_negatives: int, *, split: str = "train", max_queries: int | None = None,
                  seed: int = 0, threads: int = 1, cache_dir: Path | None = None) -> list[TrainExample]:
    if source.startswith("irds:"):
        return irds_examples(source[5:], n_negatives, max_queries, seed)
    path = Path(source)
    if path.is_dir():
        return beir_examples(path, n_negatives, split=split, max_queries=max_queries, seed=seed,
                             threads=threads, cache_dir=cache_dir)
    if path.is_file():
        rng = random.Random(seed)
        most = [0]
        examples = list(_jsonl_examples(path, n_negatives, rng, most))
        if not examples:
            raise InputError("no training examples: the file has no lines; give one JSON object per line "
                             "with 'query', 'positive' and 'negatives' (and 'scores' for --loss kl), e.g. "
                             "from `splare-lucene distill-data`", path=source)
        if most[0] > n_negatives:
            logger.warning("%s: examples hold up to %d negatives and --negatives %d uses %d of them per query, "
                           "picked at random (pass --negatives %d to use them all; the paper's recipe uses 8)",
                           source, most[0], n_negatives, n_negatives, most[0])
        rng.shuffle(examples)
        return examples[:max_queries] if max_queries else examples
    raise InputError("training data not found: give a BEIR folder, a JSONL file of examples, or irds:<id>",
                     path=source)
