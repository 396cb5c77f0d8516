"""`splare-lucene evaluate`: metrics, tables, significance, plot, collections by name or folder,
offline fail-fast, index reuse keyed by model and quantization, cross-lingual mode, examples."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from splare_lucene.errors import InputError
from splare_lucene.evaluate import (ResultRow, evaluate, markdown_table, mean_rows, measure_names, paired_test,
                                    plot_results, read_qrels, read_run, split_measures, values_of, write_csv,
                                    write_per_query)
from splare_lucene.types import ScoredDoc

from conftest import DEMO_DIR, REPO, read_jsonl, requires_shared_data
from test_cli_light import cli as cli_subprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- metrics against hand-computed values --------------------------------------------------------

QRELS = {"q1": {"a": 1, "b": 1, "d": 1}, "q2": {"c": 2}, "q3": {"e": 1}}


def _run(ranked: dict[str, list[str]]) -> dict[str, list[ScoredDoc]]:
    return {q: [ScoredDoc(q, d, 10.0 - r, r + 1) for r, d in enumerate(docs)] for q, docs in ranked.items()}


RUN = _run({"q1": ["a", "x", "b"], "q2": ["y", "c"]})  # q3 has judgements but no hits: counts 0


def test_metrics_match_hand_computed_values():
    aggregate, per_query = evaluate(RUN, QRELS, ["nDCG@10", "R@100", "RR@10"])
    # q1: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG (3 relevant) = 1 + 1/log2(3) + 1/log2(4)
    ndcg_q1 = 1.5 / (1 + 1 / math.log2(3) + 0.5)
    ndcg_q2 = (2 / math.log2(3)) / 2  # relevance 2 at rank 2; ideal: at rank 1
    assert aggregate["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3, abs=1e-6)
    assert aggregate["R@100"] == pytest.approx((2 / 3 + 1 + 0) / 3, abs=1e-6)
    assert aggregate["RR@10"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-6)
    table = {(q, m): v for q, m, v in per_query}
    assert table[("q1", "nDCG@10")] == pytest.approx(ndcg_q1, abs=1e-6)
    assert table[("q3", "R@100")] == 0.0


def test_custom_measure_strings():
    assert split_measures("nDCG@10, P(rel=2)@5,AP,nDCG(dcg='exp-log2',judged_only=True)@10") == [
        "nDCG@10", "P(rel=2)@5", "AP", "nDCG(dcg='exp-log2',judged_only=True)@10"]
    assert measure_names(["MRR@10", "RR@10", "nDCG@10"]) == ["RR@10", "nDCG@10"]
    aggregate, _ = evaluate(RUN, QRELS, ["P@1", "AP", "P(rel=2)@2"])
    assert aggregate["P@1"] == pytest.approx(1 / 3)
    assert aggregate["AP"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5 + 0) / 3, abs=1e-6)
    assert aggregate["P(rel=2)@2"] == pytest.approx((0 + 0.5 + 0) / 3)
    with pytest.raises(InputError, match="unknown measure 'nDCG@@10'.*examples"):
        measure_names(["nDCG@@10"])


def test_read_run_and_its_errors(tmp_path):
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 b 2 1.5 t\nq1 Q0 a 1 2.0 t\nq2 Q0 c 1 0.5 t\n")
    parsed = read_run(run)
    assert [h.doc_id for h in parsed["q1"]] == ["a", "b"] and parsed["q2"][0] == ScoredDoc("q2", "c", 0.5, 1)
    (tmp_path / "bad.trec").write_text("q1 Q0 a 1\n")
    with pytest.raises(InputError, match=r"bad.trec:1: expected 6 columns"):
        read_run(tmp_path / "bad.trec")
    with pytest.raises(InputError, match="no such run file"):
        read_run(tmp_path / "missing.trec")


# -- significance --------------------------------------------------------------------------------

def test_t_test_p_value_equals_scipy():
    from scipy.stats import ttest_rel

    a = [0.5, 0.7, 0.1, 0.9, 0.4, 0.3]
    b = [0.4, 0.5, 0.2, 0.6, 0.4, 0.1]
    assert paired_test(a, b, "t-test") == pytest.approx(float(ttest_rel(a, b).pvalue), rel=1e-12)
    assert paired_test(a, a, "t-test") == 1.0 and paired_test(a, a, "randomization") == 1.0


def test_randomization_test():
    a = [0.5, 0.7, 0.1, 0.9, 0.4, 0.3, 0.8, 0.6]
    b = [x - 0.2 for x in a]  # always better: only the all-positive sign pattern is as extreme
    p = paired_test(a, b, "randomization", trials=4000, seed=1)
    assert p == paired_test(a, b, "randomization", trials=4000, seed=1)  # seeded
    assert 0 < p < 0.05
    assert paired_test(a, b[::-1], "randomization", trials=2000) > 0.05
    with pytest.raises(InputError, match=r"must be one of \['t-test', 'randomization'\]; got 'wilcoxon'"):
        paired_test(a, b, "wilcoxon")


# -- tables, per-query files, plot ------------------------------------------------------------------

ROWS = [ResultRow("c1", "splare", {"nDCG@10": 0.5, "R@100": 0.8}, 10, 0.0123),
        ResultRow("c1", "BM25", {"nDCG@10": 0.4, "R@100": 0.7}, 10, None, True),
        ResultRow("c2", "splare", {"nDCG@10": 0.3, "R@100": 0.6}, 20, 0.00001),
        ResultRow("c2", "BM25", {"nDCG@10": 0.2, "R@100": 0.5}, 20, None, True)]


def test_markdown_and_csv_tables(tmp_path):
    rows = ROWS + mean_rows(ROWS)
    assert [(r.collection, r.system) for r in rows[-2:]] == [("mean", "splare"), ("mean", "BM25")]
    assert rows[-2].metrics["nDCG@10"] == pytest.approx(0.4) and rows[-2].queries == 30
    md = markdown_table(rows, ["nDCG@10", "R@100"], "t-test vs BM25").splitlines()
    assert md[0] == "| collection | system | queries | nDCG@10 | R@100 | p (nDCG@10, t-test vs BM25) |"
    assert md[2] == "| c1 | splare | 10 | 0.5000 | 0.8000 | 0.012 |"
    assert md[3] == "| c1 | BM25 | 10 | 0.4000 | 0.7000 | baseline |"
    assert md[4].endswith("| 1.00e-05 |") and len(md) == 2 + 6
    write_csv(rows, ["nDCG@10", "R@100"], tmp_path / "r.csv")
    parsed = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert parsed[0] == {"collection": "c1", "system": "splare", "queries": "10", "nDCG@10": "0.500000",
                         "R@100": "0.800000", "p_value": "0.0123", "baseline": "0"}
    assert parsed[1]["p_value"] == "" and parsed[1]["baseline"] == "1" and parsed[-1]["collection"] == "mean"
    assert mean_rows(ROWS[:2]) == []  # one collection: no mean


def test_per_query_file(tmp_path):
    _, per_query = evaluate(RUN, QRELS, ["nDCG@10", "R@100"])
    write_per_query(tmp_path / "pq.tsv", {"sys": per_query})
    lines = (tmp_path / "pq.tsv").read_text().splitlines()
    assert lines[0] == "system\tquery_id\tmeasure\tvalue" and len(lines) == 1 + 3 * 2
    assert "sys\tq2\tR@100\t1.000000" in lines and "sys\tq3\tnDCG@10\t0.000000" in lines
    assert values_of(per_query, "R@100", ["q2", "q1", "zz"]) == pytest.approx([1.0, 2 / 3, 0.0])


def test_plot_writes_a_png(tmp_path):
    path = plot_results(ROWS, "nDCG@10", tmp_path / "plot.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 2000


# -- collections: folders through ir_datasets, names, offline failure ----------------------------

def test_local_folder_round_trip_through_ir_datasets():
    from splare_lucene.collections import resolve_collection
    from splare_lucene.corpus import read_documents, read_queries

    folder = requires_shared_data("cranfield")
    coll = resolve_collection(str(folder))
    assert coll.dataset_id == "local/cranfield/test" and coll.name == "cranfield" and coll.source.startswith("irds:")
    import ir_datasets

    assert ir_datasets.load(coll.dataset_id).has_docs()
    assert list(read_documents(coll.source, allow_empty=True)) == list(read_documents(str(folder), allow_empty=True))
    assert list(read_queries(coll.source)) == list(read_queries(str(folder)))
    assert coll.qrels() == read_qrels(folder / "qrels" / "test.tsv")
    assert resolve_collection(str(folder)).dataset_id == coll.dataset_id  # registered once


def test_hand_made_folder_gzip_corpus_and_headerless_qrels(tmp_path):
    from splare_lucene.collections import resolve_collection
    from splare_lucene.corpus import read_documents

    folder = tmp_path / "mine"
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as f:
        f.write(json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\n")
        f.write(json.dumps({"_id": "d2", "text": "no title"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "body?"}) + "\n")
    (folder / "qrels" / "dev.tsv").write_text("q1\td1\t1\n")
    coll = resolve_collection(str(folder), split="dev", language="fr")
    assert coll.name == "mine/dev" and coll.language == "fr"
    assert [(d.id, d.text) for d in read_documents(coll.source)] == [("d1", "T body"), ("d2", "no title")]
    assert coll.qrels() == {"q1": {"d1": 1}}
    with pytest.raises(InputError, match="no qrels for split 'test'"):
        resolve_collection(str(folder)).require("qrels")


def test_names_resolve_to_ir_datasets_ids():
    from splare_lucene.collections import expand_collections, resolve_collection

    assert resolve_collection("beir/scifact/test").dataset_id == "beir/scifact/test"
    arguana = resolve_collection("beir/arguana/test")  # single-split datasets carry no split in ir_datasets
    assert (arguana.dataset_id, arguana.name, arguana.corpus_key) == ("beir/arguana", "beir/arguana/test", "irds:beir/arguana")
    sw = resolve_collection("miracl/sw/dev")
    assert (sw.dataset_id, sw.language, sw.corpus_key) == ("miracl/sw/dev", "sw", "irds:miracl/sw")
    assert resolve_collection("miracl/ja").dataset_id == "miracl/ja/dev"
    assert len(expand_collections(["beir/cqadupstack/test", "x"])) == 13
    with pytest.raises(InputError, match="not redistributed.*--collection FOLDER"):
        resolve_collection("beir/robust04/test")
    with pytest.raises(InputError, match="unknown BEIR dataset 'scifacts'; names: msmarco"):
        resolve_collection("beir/scifacts/test")
    with pytest.raises(InputError, match="has no public qrels; splits with qrels: train, dev"):
        resolve_collection("miracl/sw/test-b")
    with pytest.raises(InputError, match="not a folder, nor a name"):
        resolve_collection("no-such-folder")


@pytest.mark.parametrize("name,files", [
    ("beir/scifact/test", ["beir/scifact/source.zip"]),
    ("miracl/sw/dev", ["miracl/v1.0/sw/docs/docs-0.jsonl.gz", "miracl/v1.0/sw/dev/topics.tsv",
                       "miracl/v1.0/sw/dev/qrels.tsv"]),
])
def test_named_collection_without_its_files_fails_fast(name, files, tiny_model, tmp_path, monkeypatch):
    """In a fresh interpreter with an empty ir_datasets home and every proxy pointing nowhere: the
    command fails at once, naming each file and where to put it, before loading the model."""
    home = tmp_path / "irds-home"
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # a connection attempt would fail, not hang
    rc, err, heavy = cli_subprocess("evaluate", "--model", str(tiny_model), "--collection", name,
                                    "--output", str(tmp_path / "out"))
    assert rc == 1, err
    for f in files:
        assert str(home / f) in err
    assert "https://" in err and "--download" in err
    assert "torch" not in heavy and "pyserini" not in heavy  # failed before loading anything
    assert not (tmp_path / "out").exists()


# -- topics: queries and qrels from where ------------------------------------------------------

def test_topics_sources(tmp_path):
    from splare_lucene.collections import load_topics, resolve_collection

    demo = resolve_collection(str(DEMO_DIR))
    topics = load_topics(demo)
    assert len(topics.queries) == 8 and topics.qrels == read_qrels(DEMO_DIR / "qrels" / "test.tsv")
    queries = tmp_path / "translated.tsv"
    queries.write_text("q1\tdes étoiles\nq2\tune recette\nzz\tsans jugement\n")
    topics = load_topics(demo, str(queries))  # a file: qrels of the corpus collection
    assert [q.id for q in topics.queries] == ["q1", "q2"] and topics.name == "translated->demo"
    other = tmp_path / "other"
    (other / "qrels").mkdir(parents=True)
    (other / "corpus.jsonl").write_text(json.dumps({"_id": "x", "text": "x"}) + "\n")
    (other / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "stars"}) + "\n")
    (other / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tastro-02\t1\n")
    topics = load_topics(demo, resolve_collection(str(other)))  # a collection: its own qrels
    assert topics.qrels == {"q1": {"astro-02": 1}}
    (tmp_path / "q.tsv").write_text("nope\tno such query\n")
    with pytest.raises(InputError, match="none of the 1 queries.*has a judgement"):
        load_topics(demo, str(tmp_path / "q.tsv"))


def test_inputs_are_checked_before_the_model_loads(tmp_path):
    """A model that does not exist is never reached: each input error comes first."""
    from splare_lucene.errors import ConfigError
    from splare_lucene.pipeline import run_evaluation

    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 a one 1.0 t\n")
    demo = str(DEMO_DIR)
    with pytest.raises(InputError, match="bad.trec:1: rank must be an integer"):
        run_evaluation("no-such-model-dir", [demo], baseline_runs=[str(bad)], output=tmp_path / "o")
    with pytest.raises(ConfigError, match="one --baseline-run per collection.*2 collection"):
        run_evaluation("no-such-model-dir", [demo, demo], baseline_runs=[str(bad)])
    with pytest.raises(ConfigError, match="system names must differ"):
        run_evaluation("BM25", [demo], bm25=True)
    with pytest.raises(InputError, match="no such qrels file"):
        run_evaluation("no-such-model-dir", [demo], qrels=str(tmp_path / "none.tsv"))
    with pytest.raises(ConfigError, match=r"significance must be one of \['t-test', 'randomization'\]"):
        run_evaluation("no-such-model-dir", [demo], significance="sign")
    assert not (tmp_path / "o").exists()


def test_help_is_fast_and_light():
    rc, err, heavy = cli_subprocess("evaluate", "--collection", "x", "--measures", "nDCG@@1")
    assert rc == 1 and "unknown measure 'nDCG@@1'" in err and heavy == []
    proc = subprocess.run([sys.executable, "-m", "splare_lucene.cli.main", "evaluate", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: splare-lucene evaluate")


# -- end to end with Anserini ------------------------------------------------------------------

def _cli(argv, capsys):
    from splare_lucene.cli.main import main

    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    return captured.out


@pytest.fixture(scope="module")
def tatoeba_run(tiny_model, tmp_path_factory):
    """deu-eng evaluated once with BM25 (German analyzer) and a plot."""
    from splare_lucene.cli.main import main

    folder = requires_shared_data("tatoeba-xl/deu-eng")
    out = tmp_path_factory.mktemp("eval") / "out"
    args = ["evaluate", "--model", str(tiny_model), "--collection", str(folder), "--bm25", "--language", "de",
            "--plot", "--k", "100", "--device", "cpu", "--output", str(out)]
    assert main(args) == 0
    return folder, out


@pytest.mark.java
def test_evaluate_writes_table_runs_per_query_and_plot(tatoeba_run):
    from scipy.stats import ttest_rel

    folder, out = tatoeba_run
    md = (out / "results.md").read_text()
    assert "| deu-eng | tiny | 1000 |" in md and "| deu-eng | BM25 | 1000 |" in md and "baseline |" in md
    assert "p (nDCG@10, t-test vs BM25)" in md
    result = json.loads((out / "results.json").read_text())
    assert result["measures"] == ["nDCG@10", "R@100", "R@1000", "RR@10"]
    coll = result["collections"][0]
    assert coll["language"] == "de" and coll["reused_index"] is False and coll["queries"] == 1000
    assert (out / "results.png").read_bytes()[:8] == PNG_SIGNATURE
    assert [r["system"] for r in csv.DictReader((out / "results.csv").open())] == ["tiny", "BM25"]
    # per-query values = ir_measures on the written runs; the p-value = scipy on them
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    rows = list(csv.DictReader((out / "deu-eng" / "per_query.tsv").open(), delimiter="\t"))
    assert len(rows) == 2 * 1000 * 4
    values = {(r["system"], r["query_id"], r["measure"]): float(r["value"]) for r in rows}
    for system, run_file in (("tiny", "run.trec"), ("BM25", "bm25.trec")):
        aggregate, per_query = evaluate(read_run(out / "deu-eng" / run_file), qrels, result["measures"])
        assert all(values[(system, q, m)] == pytest.approx(v, abs=1e-6) for q, m, v in per_query)
        row = next(r for r in result["rows"] if r["system"] == system)
        assert row["metrics"] == pytest.approx(aggregate)
    qids = sorted(qrels)
    a = [values[("tiny", q, "nDCG@10")] for q in qids]
    b = [values[("BM25", q, "nDCG@10")] for q in qids]
    tiny_row = next(r for r in result["rows"] if r["system"] == "tiny")
    assert tiny_row["p_value"] == pytest.approx(float(ttest_rel(a, b).pvalue), rel=1e-4)


@pytest.mark.java
def test_index_is_reused_and_a_baseline_run_is_compared(tatoeba_run, tiny_model, capsys):
    folder, out = tatoeba_run
    index_dir = next((out / "deu-eng").glob("index-*"))
    mtime = (index_dir / "splare_index.json").stat().st_mtime_ns
    printed = _cli(["evaluate", "--model", str(tiny_model), "--collection", str(folder), "--k", "100",
                    "--baseline-run", str(out / "deu-eng" / "bm25.trec"), "--baseline-name", "bm25-file",
                    "--significance", "randomization", "--measures", "nDCG@10,R@100", "--device", "cpu",
                    "--output", str(out)], capsys)
    assert "| deu-eng | bm25-file | 1000 |" in printed and "randomization vs bm25-file" in printed
    assert "index reused" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["collections"][0]["reused_index"] is True
    assert (index_dir / "splare_index.json").stat().st_mtime_ns == mtime
    assert len(list((out / "deu-eng").glob("index-*"))) == 1


@pytest.mark.java
def test_other_quantization_gets_its_own_index(tiny_model, tmp_path, capsys):
    other = tmp_path / "tiny-q50"
    shutil.copytree(tiny_model, other)
    cfg = json.loads((other / "splare_config.json").read_text())
    cfg["quantization_scale"] = 50.0
    (other / "splare_config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    base = ["evaluate", "--collection", str(DEMO_DIR), "--k", "10", "--device", "cpu", "--output", str(out)]
    _cli(base + ["--model", str(tiny_model)], capsys)
    _cli(base + ["--model", str(other), "--name", "tiny"], capsys)  # same name, other quantization
    result = json.loads((out / "results.json").read_text())
    assert result["collections"][0]["reused_index"] is False and result["signature"]["quantization_scale"] == 50.0
    indexes = sorted((out / "demo").glob("index-*"))
    assert len(indexes) == 2
    scales = {json.loads((i / "splare_index.json").read_text())["signature"]["quantization_scale"] for i in indexes}
    assert scales == {100.0, 50.0}
    _cli(base + ["--model", str(tiny_model)], capsys)
    assert json.loads((out / "results.json").read_text())["collections"][0]["reused_index"] is True


@pytest.mark.java
def test_kept_encoded_corpus_is_indexed_without_encoding_again(tiny_model, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    args = ["evaluate", "--model", str(tiny_model), "--collection", str(DEMO_DIR), "--k", "10", "--device", "cpu",
            "--output", str(out), "--keep-jsonl"]
    _cli(args, capsys)
    (index_dir,) = (out / "demo").glob("index-*")
    (jsonl_dir,) = (out / "demo").glob("jsonl-*")
    assert jsonl_dir.name[len("jsonl-"):] == index_dir.name[len("index-"):]
    shutil.rmtree(index_dir)
    written = {f.name: f.stat().st_mtime_ns for f in jsonl_dir.iterdir()}
    caplog.clear()
    with caplog.at_level("DEBUG", logger="splare_lucene"):
        _cli(args, capsys)
    assert {f.name: f.stat().st_mtime_ns for f in jsonl_dir.iterdir()} == written
    assert any("indexing the encoded corpus" in r.getMessage() for r in caplog.records)
    assert not any(r.name.startswith("splare_lucene.engines") and r.getMessage().startswith("wrote ")
                   for r in caplog.records)  # encode_corpus did not run
    assert (index_dir / "splare_index.json").is_file()


@pytest.mark.java
def test_cross_lingual_queries_file_against_a_corpus(tatoeba_run, tiny_model, tmp_path, capsys):
    folder, out = tatoeba_run
    queries = tmp_path / "deu-queries.jsonl"
    queries.write_text("".join(json.dumps(q) + "\n" for q in read_jsonl(folder / "queries.jsonl")[:40]))
    printed = _cli(["evaluate", "--model", str(tiny_model), "--collection", str(folder), "--queries-from",
                    str(queries), "--bm25", "--language", "de", "--k", "100", "--device", "cpu",
                    "--output", str(out)], capsys)
    assert "| deu-queries->deu-eng | tiny | 40 |" in printed and "| deu-queries->deu-eng | BM25 | 40 |" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["collections"][0]["reused_index"] is True  # the corpus' index, shared
    assert (out / "deu-queries--on--deu-eng" / "run.trec").is_file()
    # qrels of another corpus are refused, not scored 0
    (tmp_path / "qrels.tsv").write_text("".join(f"q-{i:04d}\tnot-a-doc-{i}\t1\n" for i in range(40)))
    from splare_lucene.cli.main import main

    assert main(["evaluate", "--model", str(tiny_model), "--collection", str(folder), "--queries-from",
                 str(queries), "--qrels", str(tmp_path / "qrels.tsv"), "--device", "cpu",
                 "--output", str(out)]) == 1
    assert "belong to another corpus" in capsys.readouterr().err


# -- the examples, as a user runs them ---------------------------------------------------------------

def _example(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(REPO / "examples" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.java
def test_beir_end_to_end_example(tiny_model, tmp_path):
    requires_shared_data("cranfield")
    proc = _example("beir_end_to_end.py", "--model", str(tiny_model), "--output", str(tmp_path), "--k", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| cranfield | tiny | 225 |" in proc.stdout and "| cranfield | BM25 | 225 | " in proc.stdout
    assert "t-test vs BM25" in proc.stdout and (tmp_path / "results.png").is_file()


@pytest.mark.java
def test_miracl_end_to_end_example(tiny_model, tmp_path):
    requires_shared_data("tatoeba-xl/deu-eng")
    proc = _example("miracl_end_to_end.py", "--model", str(tiny_model), "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| deu-eng | tiny | 1000 |" in proc.stdout and "| deu-eng | BM25 | 1000 |" in proc.stdout
    assert json.loads((tmp_path / "results.json").read_text())["collections"][0]["language"] == "de"


def test_miracl_example_by_name_without_files_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    proc = _example("miracl_end_to_end.py", "--collection", "miracl/yo/dev", "--output", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert str(tmp_path / "home" / "miracl" / "v1.0" / "yo" / "dev" / "topics.tsv") in proc.stderr


@pytest.mark.parametrize("first", ["q1 0 d1", "q1\td1\td2", "q1 0 d1 1 extra"])
def test_malformed_first_qrels_line_is_an_error_not_a_header(tmp_path, first):
    """Only a first line ending in a header name (BEIR's `query-id corpus-id score`) is skipped;
    before, any first line whose last column was not an integer vanished as a "header", and the
    user got "none of the queries has a judgement" instead of the line at fault."""
    from splare_lucene.evaluate import read_qrels

    path = tmp_path / "qrels.tsv"
    path.write_text(first + "\nq2 0 d2 1\n")
    with pytest.raises(InputError, match=r"qrels.tsv:1: .*(not an integer|columns)"):
        read_qrels(path)
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert read_qrels(path) == {"q1": {"d1": 1}}
