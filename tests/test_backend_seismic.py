"""The Seismic search backend (issue 11, section 1): built from the same encoded parts as Lucene's
index, with no pruning it returns Lucene's exact runs; it records and checks the model's
quantization, says how to install itself when missing, and round-trips through the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.errors import ConfigError, IndexMismatchError
from splare_lucene.types import Query

from conftest import DEMO_DIR, read_jsonl

seismic = pytest.importorskip("seismic", reason="pyseismic-lsr not installed: pip install 'splare-lucene[seismic]'")


def _queries() -> list[Query]:
    return [Query(q["_id"], q["text"]) for q in read_jsonl(DEMO_DIR / "queries.jsonl")]


@pytest.fixture(scope="module")
def encoded(tiny_model, tmp_path_factory):
    """The demo corpus (35 documents) encoded once by the tiny model."""
    root = tmp_path_factory.mktemp("seismic")
    rc = cli(["encode", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--output", str(root / "jsonl"),
              "--device", "cpu"])
    assert rc == 0
    return root


@pytest.fixture(scope="module")
def seismic_exact(encoded):
    from splare_lucene.backends import build_index
    from splare_lucene.backends.seismic import exact_build

    counters = build_index(encoded / "jsonl", encoded / "seismic-exact", backend="seismic",
                           options=exact_build(35), progress=False)
    assert counters["indexed"] + counters["empty"] == 35
    return encoded / "seismic-exact"


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from splare_lucene.encoder import SplareEncoder

    return SplareEncoder.from_pretrained(tiny_model, device="cpu")


def _exact_run(encoded, encoder, queries, k):
    """Brute force in Python: integer dot products of the quantized vectors, ranked by the tie rule."""
    from splare_lucene.jsonl import read_vectors
    from splare_lucene.ranking import rank_hits
    from splare_lucene.types import ScoredDoc

    docs = dict(read_vectors(encoded / "jsonl"))
    run = {}
    for q in queries:
        qv = encoder.terms(encoder.encode([q.text], kind="query")[0])
        scores = {d: sum(w * v.get(t, 0) for t, w in qv.items()) for d, v in docs.items()}
        run[q.id] = rank_hits(ScoredDoc(q.id, d, float(s), 0) for d, s in scores.items() if s > 0)[:k]
    return run


def test_exact_seismic_equals_brute_force(encoded, seismic_exact, encoder):
    """With no pruning, Seismic's run is the exact run: same documents, scores and order (k covers
    every match, so no tie is cut at k), for every query."""
    from splare_lucene.backends import open_index
    from splare_lucene.backends.seismic import EXACT_SEARCH

    queries = _queries()
    got = open_index(seismic_exact, encoder, options=EXACT_SEARCH).search(queries, k=35, progress=False)
    want = _exact_run(encoded, encoder, queries, 35)
    assert got == want
    assert sum(len(h) for h in got.values()) > 8  # the check is not vacuous


@pytest.mark.parametrize("k", [1, 3, 10])
def test_exact_seismic_top_k_equals_brute_force(encoded, seismic_exact, encoder, k):
    """Below the number of matches (the heap fills, so Seismic's block skipping is at work): the
    same scores in the same order, and the same documents above the k-th score (documents tied at
    the k-th score may be cut differently, as between any two engines)."""
    from splare_lucene.backends import open_index
    from splare_lucene.backends.seismic import EXACT_SEARCH

    queries = _queries()
    got = open_index(seismic_exact, encoder, options=EXACT_SEARCH).search(queries, k=k, progress=False)
    full = _exact_run(encoded, encoder, queries, 35)
    for q in queries:
        want = full[q.id][:k]
        assert [round(h.score) for h in got[q.id]] == [round(h.score) for h in want], q.id
        if want:
            last = round(want[-1].score)
            assert {h.doc_id for h in got[q.id] if round(h.score) > last} == \
                {h.doc_id for h in want if round(h.score) > last}, q.id


@pytest.mark.java
def test_exact_seismic_run_equals_lucene_run(encoded, seismic_exact, encoder):
    """Lucene's impact index of the same parts and Seismic without pruning: the same run (documents,
    scores, order under the tie rule) for every query."""
    from splare_lucene.backends import build_index, open_index
    from splare_lucene.backends.seismic import EXACT_SEARCH

    build_index(encoded / "jsonl", encoded / "lucene", backend="lucene", progress=False)
    queries = _queries()
    lucene = open_index(encoded / "lucene", encoder).search(queries, k=35, progress=False)
    seismic_run = open_index(seismic_exact, encoder, options=EXACT_SEARCH).search(queries, k=35, progress=False)
    assert seismic_run == lucene
    assert sum(len(h) for h in lucene.values()) > 8


def test_seismic_metadata_records_backend_and_model(seismic_exact, encoder):
    from splare_lucene.backends import index_backend

    meta = json.loads((seismic_exact / "splare_index.json").read_text())
    assert index_backend(seismic_exact) == "seismic"
    assert meta["signature"] == encoder.config.index_signature()
    assert meta["model_fingerprint"] == encoder.fingerprint
    assert meta["seismic"]["index_class"] == "SeismicIndex"  # 64 latents: 16-bit components suffice
    assert meta["seismic"]["build"]["n_postings"] == 35


def test_large_vocabulary_models_get_the_lv_index():
    from splare_lucene.backends.seismic import _index_class_name

    assert _index_class_name(131_072) == "SeismicIndexLV"  # Llama Scope
    assert _index_class_name(65_536) == "SeismicIndexLV"
    assert _index_class_name(65_535) == "SeismicIndex"
    assert _index_class_name(None) == "SeismicIndexLV"  # width unknown: the safe one


def test_other_quantization_is_refused(seismic_exact, tiny_model, tmp_path):
    """A model whose quantization differs from the index's is refused, as for Lucene."""
    from splare_lucene.backends import open_index
    from splare_lucene.encoder import SplareEncoder

    import dataclasses

    other = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    other.config = dataclasses.replace(other.config, quantization_scale=7.0)
    with pytest.raises(IndexMismatchError, match="quantization_scale"):
        open_index(seismic_exact, other)


def test_backend_must_agree_with_the_index(seismic_exact, encoder):
    from splare_lucene.backends import open_index, resolve_backend

    assert resolve_backend(seismic_exact) == "seismic"
    with pytest.raises(ConfigError, match="built by the seismic backend.*--backend seismic"):
        open_index(seismic_exact, encoder, backend="lucene")
    with pytest.raises(ConfigError, match="backend must be one of"):
        resolve_backend(seismic_exact, "faiss")


def test_missing_extra_names_the_install_command(encoded, tmp_path, monkeypatch, capsys):
    """Without pyseismic-lsr, building a Seismic index fails with the pip command, before any work."""
    from splare_lucene.backends import build_index

    monkeypatch.setitem(sys.modules, "seismic", None)  # `import seismic` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'splare-lucene\[seismic\]'"):
        build_index(encoded / "jsonl", tmp_path / "idx", backend="seismic", progress=False)
    assert not (tmp_path / "idx").exists()
    rc = cli(["index", "--backend", "seismic", "--jsonl", str(encoded / "jsonl"), "--index", str(tmp_path / "i2")])
    assert rc == 1 and not (tmp_path / "i2").exists()
    assert "pip install 'splare-lucene[seismic]'" in capsys.readouterr().err


@pytest.mark.java  # writing the TREC run imports splare_lucene.search, which starts the JVM
def test_cli_round_trip(encoded, tiny_model, tmp_path, capsys):
    """index --backend seismic -> search (backend read from the index) -> a TREC run equal to the
    exact run; --backend lucene on it is refused."""
    rc = cli(["index", "--backend", "seismic", "--jsonl", str(encoded / "jsonl"), "--index", str(tmp_path / "idx"),
              "--seismic-n-postings", "35", "--seismic-max-fraction", "1", "--seismic-summary-energy", "1",
              "--seismic-doc-cut", "1000"])
    assert rc == 0
    run = tmp_path / "run.trec"
    rc = cli(["search", "--model", str(tiny_model), "--index", str(tmp_path / "idx"), "--device", "cpu",
              "--queries", str(DEMO_DIR / "queries.jsonl"), "--output", str(run), "--k", "35",
              "--seismic-heap-factor", "1"])
    assert rc == 0
    lines = [line.split() for line in run.read_text().splitlines()]
    assert lines and all(len(parts) == 6 for parts in lines)
    rc = cli(["search", "--model", str(tiny_model), "--index", str(tmp_path / "idx"), "--device", "cpu",
              "--query", "a question", "--backend", "seismic"])
    assert rc == 0
    capsys.readouterr()
    rc = cli(["search", "--model", str(tiny_model), "--index", str(tmp_path / "idx"), "--device", "cpu",
              "--query", "a question", "--backend", "lucene"])
    assert rc == 1
    assert "built by the seismic backend" in capsys.readouterr().err


@pytest.mark.java  # evaluate writes its run with splare_lucene.search (JVM)
def test_evaluate_with_seismic_builds_reuses_and_scores(tiny_model, tmp_path):
    """evaluate --backend seismic: a Seismic index under seismic-<key>/, a scored run, and a second
    run reusing that index (same model, corpus and build parameters)."""
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(tiny_model), "--collection", str(DEMO_DIR), "--backend", "seismic",
            "--k", "10", "--device", "cpu", "--output", str(out)]
    assert cli(args) == 0
    result = json.loads((out / "results.json").read_text())
    coll = result["collections"][0]
    assert "/seismic-" in coll["index_dir"] and coll["reused_index"] is False
    meta = json.loads((Path(coll["index_dir"]) / "splare_index.json").read_text())
    assert meta["backend"] == "seismic" and meta["seismic"]["build"]["n_postings"] == 3500
    assert (out / "demo" / "run.trec").read_text().strip()
    assert cli(args) == 0
    assert json.loads((out / "results.json").read_text())["collections"][0]["reused_index"] is True


def test_seismic_options_are_refused_for_lucene_and_checked(encoded, tmp_path, capsys):
    """A Seismic parameter given for a Lucene index is an error (not silently ignored); a bad value
    or an unknown option name is refused with the allowed ones, before any work."""
    from splare_lucene.backends import build_index
    from splare_lucene.backends.seismic import SeismicSearchOptions

    rc = cli(["index", "--jsonl", str(encoded / "jsonl"), "--index", str(tmp_path / "i"), "--seismic-n-postings", "9"])
    assert rc == 1 and "--seismic-n-postings applies to --backend seismic only" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no option 'n_posting'.*n_postings"):
        build_index(encoded / "jsonl", tmp_path / "j", backend="seismic", options={"n_posting": 9})
    with pytest.raises(ConfigError, match="heap_factor must be in"):
        SeismicSearchOptions(heap_factor=0.0)
    assert not (tmp_path / "i").exists() and not (tmp_path / "j").exists()
