"""Explanations (issue 13, section 2): per-latent products that add up exactly to the score
Lucene gives a document, the Python record, the CLI in its three formats, `search --explain`,
and bad inputs that give one clear line."""

from __future__ import annotations

import json

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.errors import ConfigError, InputError
from splare_lucene.explain.records import Explanation

from conftest import DEMO_DIR, read_jsonl

DOC = "Honey bees pollinate flowers and crops, carrying pollen from plant to plant."


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from splare_lucene.encoder import SplareEncoder

    return SplareEncoder.from_pretrained(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def built(tiny_demo_index):
    return tiny_demo_index


def test_products_add_up_to_the_dot_product_of_the_indexed_terms(encoder):
    """Without an index: the score is the integer dot product of the query's and the document's
    terms as `encode`/`search` make them (SplareEncoder.terms), latent by latent."""
    e = encoder.explain("bees pollinate flowers", DOC)
    assert isinstance(e, Explanation) and e.doc_source == "text" and e.lucene_score is None
    q = encoder.terms(encoder.encode(["bees pollinate flowers"], kind="query")[0])
    d = encoder.terms(encoder.encode([DOC], kind="document")[0])
    assert e.score == sum(w * d[t] for t, w in q.items() if t in d) > 0
    assert sum(s.product for s in e.shared) == e.score
    assert {s.term for s in e.shared} == set(q) & set(d)
    assert all(s.product == s.query_impact * s.doc_impact for s in e.shared)
    assert sum(s.share for s in e.shared) == pytest.approx(1.0)
    assert [s.product for s in e.shared] == sorted((s.product for s in e.shared), reverse=True)
    # query latents: float weight and the impact searched (round(weight * scale))
    assert {x.term: x.impact for x in e.query_latents if x.impact} == q
    # activating tokens are tokens of the texts, with their places
    for s in e.shared:
        assert s.query_tokens and s.doc_tokens
        for h in s.doc_tokens:
            assert DOC[h.start:h.end] == h.token and h.activation > 0


def test_query_alone(encoder):
    e = encoder.explain("bees pollinate flowers")
    assert e.document is None and e.shared == () and e.score == 0
    assert len(e.query_latents) == encoder.encode(["bees pollinate flowers"], kind="query")[0].nnz > 0
    assert e.query_tokens.text == "bees pollinate flowers"
    json.dumps(e.to_dict())  # JSON-ready


def test_query_only_encoder_explains_an_indexed_vector(encoder, monkeypatch):
    """`search --query-quantization int8 --explain`: the int8 encoder refuses documents, so an
    indexed document is explained from its stored impacts alone (a note says what is missing)."""
    d = encoder.quantize(encoder.encode([DOC], kind="document")[0])
    impacts = dict(zip(d.indices.tolist(), d.weights.tolist()))
    want = encoder.explain("bees pollinate flowers", DOC)
    monkeypatch.setattr(encoder, "query_quantization", "int8")  # encoder.pooled now refuses documents
    with pytest.raises(ConfigError, match="does not encode documents"):
        encoder.encode([DOC], kind="document")
    e = encoder.explain("bees pollinate flowers", DOC, doc_impacts=impacts, doc_id="d1")
    assert e.score == want.score and e.doc_source == "index" and e.doc_tokens is None
    assert all(s.doc_tokens == () for s in e.shared) and "quantized for queries" in e.notes[0]


def test_bad_python_inputs(encoder):
    with pytest.raises(InputError, match="query to explain is empty"):
        encoder.explain("  ")
    with pytest.raises(InputError, match="document to explain is empty"):
        encoder.explain("bees", " ")
    with pytest.raises(ConfigError, match="max_tokens"):
        encoder.explain("bees", DOC, max_tokens=-1)


@pytest.mark.java
def test_explanation_sums_equal_lucene_scores(encoder, built):
    """For the top hits of every demo query: the products add up to the score Lucene computed
    for the document (IndexSearcher.explain, float32) and to the hit's score as search prints it;
    the document's vector is the index's own."""
    from splare_lucene.backends import open_index
    from splare_lucene.explain.explain import explain_indexed
    from splare_lucene.types import Query

    index = open_index(built, encoder)
    checked = 0
    for q in read_jsonl(DEMO_DIR / "queries.jsonl"):
        for hit in index.search_one(Query(q["_id"], q["text"]), k=4):
            e = explain_indexed(encoder, built, q["text"], hit.doc_id, max_tokens=1)
            assert e.doc_source == "index" and e.doc_id == hit.doc_id
            assert sum(s.product for s in e.shared) == e.score
            assert e.lucene_score == float(e.score), (q["_id"], hit.doc_id)
            assert round(hit.score) == e.score
            assert not e.notes, e.notes  # the stored text re-encodes to the indexed vector
            checked += 1
    assert checked >= 20


@pytest.mark.java
@pytest.mark.parametrize("fmt", ["text", "json", "html"])
def test_cli_round_trip_by_doc_id(tiny_model, built, tmp_path, fmt, capsys):
    out = tmp_path / f"e.{fmt}"
    assert cli(["explain", "--model", str(tiny_model), "bees pollinate flowers", "--index", str(built),
                "--doc-id", "nature-01", "--format", fmt, "--output", str(out), "--device", "cpu"]) == 0
    assert f"wrote {fmt} explanation to {out}" in capsys.readouterr().out
    body = out.read_text(encoding="utf-8")
    if fmt == "json":
        obj = json.loads(body)
        assert obj["doc_id"] == "nature-01" and obj["doc_source"] == "index"
        assert obj["lucene_score"] == obj["score"] == sum(s["product"] for s in obj["shared"])
    elif fmt == "text":
        assert "document: nature-01 (from the index)" in body and "Lucene's score" in body
    else:
        assert body.startswith("<!DOCTYPE html>") and 'id="shared"' in body


def test_cli_doc_text_prints_text(tiny_model, capsys):
    assert cli(["explain", "--model", str(tiny_model), "bees pollinate flowers", "--doc-text", DOC,
                "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "score = sum of q_impact x d_impact" in out and "document: given text:" in out


@pytest.mark.java
def test_cli_unknown_doc_id(tiny_model, built, capsys):
    assert cli(["explain", "--model", str(tiny_model), "bees", "--index", str(built), "--doc-id", "nope-99",
                "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("splare-lucene explain: error: document id 'nope-99' is "
                                                     "not in index")


def test_cli_missing_index_fails_before_the_model_loads(tiny_model, tmp_path, capsys, monkeypatch):
    from splare_lucene import encoder as encoder_module

    monkeypatch.setattr(encoder_module.SplareEncoder, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("the model was loaded")))
    assert cli(["explain", "--model", str(tiny_model), "bees", "--index", str(tmp_path / "none"),
                "--doc-id", "x"]) == 1
    assert f"index {tmp_path / 'none'} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["q", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["q", "--doc-id", "x"], "--doc-id: needs --index"),
    (["q", "--index", "i"], "--index: applies to --doc-id"),
    (["q", "--format", "html"], "html needs --output"),
    (["q", "--doc-id", "x", "--doc-text", "t", "--index", "i"], "not allowed with"),
    (["q", "--max-tokens", "-1"], "--max-tokens"),
])
def test_cli_bad_options_exit_2(argv, match, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["explain", *argv])
    assert info.value.code == 2 and match in capsys.readouterr().err


def test_cli_empty_query(tiny_model, capsys):
    assert cli(["explain", "--model", str(tiny_model), " ", "--doc-text", DOC]) == 1
    assert "the query is empty" in capsys.readouterr().err


@pytest.mark.java
def test_search_explain_adds_a_line_per_hit(tiny_model, built, capsys):
    assert cli(["search", "--model", str(tiny_model), "--index", str(built), "--query", "bees pollinate flowers",
                "--k", "3", "--explain", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6
    for hit, why in zip(lines[::2], lines[1::2]):
        rank, score, doc_id = hit.split()[:3]
        n, rest = why.strip().split(" ", 1)
        assert rank.isdigit() and float(score) > 0
        assert n.isdigit() and int(n) > 0 and rest.startswith("shared latents: f")


def test_search_explain_needs_one_query(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing, before the model loads
        cli(["search", "--model", str(tiny_model), "--index", str(tmp_path), "--queries", "q.tsv",
             "--output", str(tmp_path / "run"), "--explain"])
    assert exit_info.value.code == 2
    assert "argument --explain: applies to one --query" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["explain", "label-latents"])
def test_help_is_light(command):
    """--help of the new commands, and the explain room itself, import no torch, JVM or Pyserini."""
    import subprocess
    import sys

    heavy = ["torch", "transformers", "jnius", "pyserini"]
    script = ("import sys, contextlib, io\n"
              "import splare_lucene.explain, splare_lucene.explain.records\n"
              "from splare_lucene.cli.main import main\n"
              "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
              "    try:\n"
              f"        main([{command!r}, '--help'])\n"
              "    except SystemExit as e:\n"
              "        assert e.code == 0\n"
              f"assert out.getvalue().startswith('usage: splare-lucene {command}')\n"
              f"print([m for m in {heavy!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_large_lucene_score_prints_in_full():
    from splare_lucene.explain.render import score_text

    assert score_text(1752640.0) == "1752640" and score_text(12.5) == "12.5"
