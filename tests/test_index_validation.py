"""Issue 10 follow-up: nothing is lost silently at index time; empty inputs; small messages.

Each fault found by the new-user hunt (/tmp/reliability_findings.md, faults 2, 3, 5, 8-10) is
reproduced with its example input:

- a document id over Lucene's 32,766-byte term limit (Anserini dropped the whole file, exit 0):
  refused at read time (textio.check_id) and by the `index --jsonl` scan; Anserini's own output
  is checked too (ERROR lines, indexed + empty + skipped == documents given);
- `index --jsonl` vectors with weights -3, 2.7, 0.4 and tokens outside the model: refused before
  Anserini, naming file, line, document and token;
- empty corpora and query files: refused, naming the file; an empty shard of a non-empty corpus
  only warns;
- `search --index FILE`, `search --query ""`, a model without sae_config.json, JVM warnings.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.corpus import read_documents, read_queries
from splare_lucene.engines import ids as ids_module
from splare_lucene.engines.ids import IdScan, decimal_up_to, scan_ids
from splare_lucene.errors import CheckpointError, ConfigError, InputError
from splare_lucene.index import IndexingError, build_index, check_anserini_output
from splare_lucene.jsonl import VectorRules, read_vectors
from splare_lucene.textio import MAX_ID_BYTES, check_id

from conftest import DEMO_DIR

LONG_ID = "x" * 40_000  # the hunt's example: one 40,000-character id
TINY = VectorRules("f", 64, "tiny")  # what the tiny model's encoded folders record


def _line(doc_id, vector, contents="") -> str:
    """A line as `encode` writes it (the scan's fast path)."""
    return json.dumps({"id": doc_id, "contents": contents, "vector": vector}, ensure_ascii=False)


def _write(path: Path, lines, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _summary(directory: Path, width: int | None = 64) -> None:
    """A summary.json as `encode` writes it for the tiny model (64 latents)."""
    extra = {"model": "tiny", "signature": {"representation": "sae", "token_prefix": "f",
                                            "quantization_scale": 100.0}}
    if width:
        extra["width"] = width
    (directory / "summary.json").write_text(json.dumps({"documents": 3, "extra": extra}))


@pytest.fixture
def no_java(monkeypatch):
    """Anserini must not start: the checks come first."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"Anserini was started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", refuse)


# -- 1. ids over Lucene's term limit ---------------------------------------------------------------


def test_long_document_id_is_refused_at_read_time(tmp_path):
    """The hunt's in/longid.jsonl: a 40,000-character id, then a normal document."""
    corpus = _write(tmp_path / "longid.jsonl", [json.dumps({"_id": LONG_ID, "text": "a"}),
                                                 json.dumps({"_id": "b", "text": "b"})])
    with pytest.raises(InputError, match=r"is 40,000 bytes long in UTF-8; ids may be at most 32,766") as err:
        list(read_documents(str(corpus)))
    assert err.value.path == str(corpus) and err.value.line == 1
    assert LONG_ID not in str(err.value)  # the message shows the id's start, not 40 kB


@pytest.mark.parametrize("text, ok", [
    ("a" * MAX_ID_BYTES, True), ("a" * (MAX_ID_BYTES + 1), False),
    ("é" * (MAX_ID_BYTES // 2), True), ("é" * (MAX_ID_BYTES // 2 + 1), False),  # 2 bytes each: UTF-8 counts
    ("😀" * (MAX_ID_BYTES // 4), True), ("😀" * (MAX_ID_BYTES // 4 + 1), False),
])
def test_id_limit_counts_utf8_bytes(text, ok):
    if ok:
        assert check_id(text) == text
    else:
        with pytest.raises(InputError, match="32,766 bytes"):
            check_id(text, "q.tsv", 3, what="query id")


def test_long_query_id_is_refused_too(tmp_path):
    queries = tmp_path / "q.tsv"
    queries.write_text(f"q1\tmoon\n{LONG_ID}\ttides\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(queries))}:2: .*32,766"):
        list(read_queries(str(queries)))


def test_index_cli_refuses_long_id_before_anserini(tmp_path, tiny_model, no_java, capsys):
    """`index --corpus in/longid.jsonl` exited 0 with "indexed 0"; now exit 1 naming file:line."""
    corpus = _write(tmp_path / "longid.jsonl", [json.dumps({"_id": LONG_ID, "text": "a"}),
                                                 json.dumps({"_id": "b", "text": "b"})])
    rc = cli(["index", "--model", str(tiny_model), "--corpus", str(corpus), "--index", str(tmp_path / "idx"),
              "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{corpus}:1: id ('_id') 'xxxx" in err and "at most 32,766 bytes" in err
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("doc_id, message", [
    (LONG_ID, "32,766 bytes"),
    ("é" * 20_000, "40,000 bytes"),          # non-ASCII: counted in UTF-8 bytes
    ("a\x01b", "a control character"),        # an escaped control character (slow path)
    ("a\x7fb", "a control character"),        # DEL, raw in the file (fast path)
    ("a\ufeffb", "byte-order mark"),          # a BOM inside an id (concatenated files)
    ("a\u2028b", "whitespace"),
])
def test_scan_uses_the_id_rules_of_every_reader(tmp_path, doc_id, message):
    """engines/ids.py (the `index --jsonl` scan) refuses what textio.check_id refuses."""
    path = _write(tmp_path / "p.jsonl", [_line("ok", {"f1": 1}), _line(doc_id, {"f1": 1})])
    with pytest.raises(InputError, match=re.escape(message)) as err:
        scan_ids([path], progress=False)
    assert err.value.path == str(path) and err.value.line == 2
    with pytest.raises(InputError, match=re.escape(message)):
        check_id(doc_id)  # the same verdict


def test_scan_refuses_a_leading_byte_order_mark(tmp_path):
    """Anserini's JSON reader does not skip a BOM: it dropped the whole file, exit 0."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (_line("a", {"f1": 3}) + "\n" + _line("b", {"f1": 3}) + "\n").encode())
    with pytest.raises(InputError, match="byte-order mark, which Anserini's JSON reader does not skip") as err:
        scan_ids([path], progress=False)
    assert err.value.line == 1


def test_scan_detects_gzip_by_content_not_name(tmp_path):
    gz_named_plain = _write(tmp_path / "a" / "part.jsonl.gz", [_line("a", {"f1": 1})], gz=False)
    plain_named_gz = _write(tmp_path / "b" / "part.jsonl", [_line("b", {"f1": 1})], gz=True)
    assert scan_ids([gz_named_plain, plain_named_gz], progress=False).documents == 2


def test_scan_turns_a_truncated_gzip_into_an_input_error(tmp_path):
    path = tmp_path / "part.jsonl.gz"
    whole = gzip.compress("".join(_line(f"d{i}", {"f1": 1}) + "\n" for i in range(3000)).encode())
    path.write_bytes(whole[:-200])
    with pytest.raises(InputError, match="gzip stream is truncated or corrupt") as err:
        scan_ids([path], progress=False)
    assert err.value.path == str(path)


@pytest.mark.parametrize("line, column", [
    (b'{"id": "a", "contents": "caf\xe9", "vector": {"f1": 1}}', 29),   # fast-path layout
    (b'{"id": "\xc3\xa9\xc3\xa9\xe9", "vector": {"f1": 1}}', 11),       # two characters before
])
def test_scan_counts_utf8_columns_in_characters(tmp_path, line, column):
    """As textio does: the bad byte's column counts decoded characters from 1."""
    path = tmp_path / "p.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(InputError, match=rf"not valid UTF-8 \(byte 0xe9 at column {column};"):
        scan_ids([path], progress=False)


# -- 2. vectors of `index --jsonl` -----------------------------------------------------------------


NEG = [_line("a", {"f1": -3, "f2": 5}, "x"), _line("b", {"f1": 2.7, "f3": 0.4}, "y"),
       _line("c", {"f99999": 5, "zzz": 3}, "z")]  # the hunt's in/neg/part.jsonl


@pytest.mark.parametrize("line, message", [
    (NEG[0], "document 'a': weight -3 of token 'f1' is outside 1..2147483647: Anserini drops weights below 1"),
    (NEG[1], "document 'b': weight 2.7 of token 'f1' is not an integer (Anserini casts a weight to int"),
    (_line("b", {"f3": 0.4}), "weight 0.4 of token 'f3' is not an integer"),
    (_line("d", {"f1": 0}), "weight 0 of token 'f1' is outside"),
    (_line("d", {"f1": 2**31}), "weight 2147483648 of token 'f1' is outside"),
    (_line("d", {"f1": True}), "weight True of token 'f1' is not an integer"),
    (_line("d", {"f1": "5"}), "weight '5' of token 'f1' is not an integer"),
    (_line("d", {"f1": 5.0}), "write it as 5"),
    (_line("d", {"a b": 5}), "token 'a b' contains whitespace"),
    (_line("d", {"": 5}), "token '' is empty"),
    (_line("d", {"t" * 256: 5}), "is longer than 255 characters"),
    (_line("d", [1, 2]), '"vector" must be a JSON object'),
    (json.dumps({"id": "d", "contents": ""}), 'expected a JSON object with an "id" and a "vector"'),
])
def test_scan_refuses_weights_anserini_would_change(tmp_path, line, message, no_java):
    """Even in a foreign folder (no summary): weights must be integers 1..2^31-1."""
    folder = tmp_path / "neg"
    path = _write(folder / "part.jsonl", [_line("ok", {"f1": 1}), line])
    with pytest.raises(InputError, match=re.escape(message)) as err:
        build_index(folder, tmp_path / "idx", progress=False)
    assert err.value.path == str(path) and err.value.line == 2
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("width", [64, None])
def test_scan_refuses_tokens_the_model_cannot_produce(tmp_path, width, no_java):
    """The hunt's third line (f99999, zzz in a folder encoded by the 64-latent model)."""
    folder = tmp_path / "neg"
    path = _write(folder / "part.jsonl", [_line("ok", {"f1": 1, "f63": 2}), NEG[2]])
    _summary(folder, width)
    bad = "f99999" if width else "zzz"  # without the width only the form f<latent> is known
    with pytest.raises(InputError, match=re.escape(f"document 'c': token '{bad}' is not a pseudo-token of the "
                                                   "model that encoded this folder")) as err:
        build_index(folder, tmp_path / "idx", progress=False)
    assert err.value.line == 2 and ("latent < 64" in str(err.value)) == bool(width)
    assert err.value.path == str(path)


def test_foreign_folder_without_summary_gets_only_the_model_free_checks(tmp_path):
    path = _write(tmp_path / "part.jsonl", [NEG[2], _line("d", {"%C3%A9": 2, "f64": 1})])
    assert scan_ids([path], progress=False).documents == 2  # tokens unknown to us: indexed as given


def test_read_vectors_applies_the_same_vector_rules(tmp_path):
    _write(tmp_path / "part.jsonl", [_line("ok", {"f1": 1}), NEG[2]])
    assert len(list(read_vectors(tmp_path))) == 2  # no summary: model-free checks only
    _summary(tmp_path)
    with pytest.raises(InputError, match="token 'f99999' is not a pseudo-token"):
        list(read_vectors(tmp_path))


@pytest.mark.parametrize("vector", [
    {}, {"f0": 1}, {"f63": 2147483647}, {"f64": 1}, {"f1": 0}, {"f1": 2147483648}, {"f01": 1},
    {"g1": 1}, {"f1": 1, "f2": -1}, {"f-1": 1}, {"f1": 10, "f2": 20, "f3": 2147483646},
])
@pytest.mark.parametrize("rules", [TINY, VectorRules("f", None), VectorRules()])
def test_fast_path_gives_the_verdict_of_the_full_parse(tmp_path, vector, rules):
    """encode's layout is matched by one regular expression; the same record with another key
    order is parsed whole and checked field by field: both must agree."""
    fast = _write(tmp_path / "fast.jsonl", [_line("d", vector)])
    slow = _write(tmp_path / "slow.jsonl", [json.dumps({"vector": vector, "id": "d"})])
    outcomes = []
    for path in (fast, slow):
        try:
            outcomes.append(scan_ids([path], progress=False, rules=rules).documents)
        except InputError as exc:
            outcomes.append(str(exc).split(": ", 1)[1])
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("n", [1, 9, 10, 63, 64, 100, 8191, 10_000, 2**31 - 1])
def test_decimal_up_to_matches_exactly_0_to_n(n):
    pattern, positive = re.compile(decimal_up_to(n)), re.compile(decimal_up_to(n, zero=False))
    for k in {*range(0, 120), n - 1, n, n + 1, n + 9, 10 * n, 10**len(str(n)) - 1}:
        assert bool(pattern.fullmatch(str(k))) == (k <= n), k
        assert bool(positive.fullmatch(str(k))) == (1 <= k <= n), k
    for text in ("00", "01", "-1", "1.0", "", " 1"):
        assert not positive.fullmatch(text)


def test_encode_records_the_width_for_the_token_check(tmp_path, tiny_model):
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.local import encode_local
    from splare_lucene.engines.parts import read_outputs

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    encode_local(encoder, str(DEMO_DIR), tmp_path / "enc", progress=False)
    summary = read_outputs([tmp_path / "enc"]).summary
    assert VectorRules.from_summary(summary) == VectorRules("f", 64, str(summary["extra"]["model"]))
    assert scan_ids(read_outputs([tmp_path / "enc"]).files, progress=False,
                    rules=VectorRules.from_summary(summary)).documents == 35


# -- 1. Anserini's own output, the backstop ----------------------------------------------------------

_ANSERINI_TAIL = """\
2026-11-29 11:40:04,529 ERROR [ForkJoinPool-1-worker-1] index.AbstractIndexer$IndexerThread (AbstractIndexer.java:182) - ForkJoinPool-1-worker-1: Unexpected Exception: Document contains at least one immense term in field="id" (whose length is longer than the max length 32766), all of which were skipped.
2026-11-29 11:40:04,532 WARN  [main] index.AbstractIndexer (AbstractIndexer.java:268) - Unexpected difference between number of indexed documents (1) and index maxDoc (0).
2026-11-29 11:40:04,687 INFO  [main] index.AbstractIndexer (AbstractIndexer.java:294) - indexed:                {indexed}
2026-11-29 11:40:04,687 INFO  [main] index.AbstractIndexer (AbstractIndexer.java:295) - unindexable:            0
2026-11-29 11:40:04,688 INFO  [main] index.AbstractIndexer (AbstractIndexer.java:296) - empty:                  {empty}
2026-11-29 11:40:04,689 INFO  [main] index.AbstractIndexer (AbstractIndexer.java:297) - skipped:                0
2026-11-29 11:40:04,691 INFO  [main] index.AbstractIndexer (AbstractIndexer.java:298) - errors:                 0
"""


def test_anserini_error_line_fails_the_index_quoting_it():
    """What Anserini 1.7.1 printed for in/longid.jsonl, with exit status 0."""
    with pytest.raises(IndexingError, match=r"(?s)given 2, Anserini counted indexed 0, .*immense term in field=\"id\""):
        check_anserini_output(_ANSERINI_TAIL.format(indexed=0, empty=0), 0, documents=2)


def test_anserini_count_mismatch_fails_without_an_error_line():
    ok_lines = "\n".join(line for line in _ANSERINI_TAIL.splitlines() if " ERROR " not in line)
    with pytest.raises(IndexingError, match="given 3, Anserini counted indexed 1, unindexable 0, empty 1"):
        check_anserini_output(ok_lines.format(indexed=1, empty=1), 0, documents=3)
    with pytest.raises(IndexingError, match="no counters printed"):
        check_anserini_output("Exception in thread main", 0, documents=1)
    with pytest.raises(IndexingError, match=r"\(exit 1\)"):
        check_anserini_output(ok_lines.format(indexed=1, empty=0), 1, documents=1)
    counters = check_anserini_output(ok_lines.format(indexed=2, empty=1), 0, documents=3)  # empty: expected
    assert counters == {"indexed": 2, "unindexable": 0, "empty": 1, "skipped": 0, "errors": 0}


@pytest.mark.java
@pytest.mark.parametrize("case", ["long id", "byte-order mark"])
def test_real_anserini_loss_is_caught_after_indexing(tmp_path, monkeypatch, case):
    """With the read-time checks bypassed, real Anserini drops the file (exit 0): build_index
    now fails, quoting Anserini, and leaves no index behind."""
    folder = tmp_path / "jsonl"
    lines = [_line(LONG_ID if case == "long id" else "a", {"f1": 3}), _line("b", {"f1": 3})]
    path = _write(folder / "part.jsonl", lines)
    if case == "byte-order mark":
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    monkeypatch.setattr(ids_module, "scan_ids", lambda files, **kwargs: IdScan(2, 0, 0.0))
    quoted = "immense term" if case == "long id" else "Unexpected character"
    with pytest.raises(IndexingError, match=rf"given 2, Anserini counted indexed 0(.|\n)*{quoted}"):
        build_index(folder, tmp_path / "idx", progress=False)
    assert not (tmp_path / "idx").exists()


@pytest.mark.java
def test_valid_folder_indexes_and_anserini_prints_no_jvm_warnings(tmp_path, monkeypatch):
    """The positive path, and fault 10: no 'Using incubator modules', MMapDirectory or
    sun.misc.Unsafe warnings from the JVM (options in java.jvm_options)."""
    folder = tmp_path / "jsonl"
    _write(folder / "part.jsonl.gz", [_line("a", {"f1": 3, "f2": 1}), _line("b", {}), _line("é", {"f63": 7})], gz=True)
    _summary(folder)
    seen = []
    real_run = subprocess.run

    def run(*args, **kwargs):
        seen.append(real_run(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(subprocess, "run", run)
    counters = build_index(folder, tmp_path / "idx", progress=False)
    assert counters["indexed"] == 2 and counters["empty"] == 1
    stderr = seen[-1].stderr + seen[-1].stdout
    for noise in ("Using incubator modules", "MMapDirectory", "sun.misc.Unsafe", "SLF4J(I)"):
        assert noise not in stderr, noise


# -- 3. empty inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, content, kind, message", [
    ("empty.jsonl", "", "documents", "no documents: the file is empty"),
    ("blank.jsonl", "\n\n  \n", "documents", "no documents: the file is empty, or holds only blank lines"),
    ("header_only.tsv", "id\ttext\n", "queries", "or a header line"),
    ("empty.tsv", "", "queries", "no queries: the file is empty"),
])
def test_a_source_without_records_is_refused(tmp_path, name, content, kind, message):
    path = tmp_path / name
    path.write_text(content)
    reader = read_documents if kind == "documents" else read_queries
    with pytest.raises(InputError, match=re.escape(message)) as err:
        list(reader(str(path)))
    assert err.value.path == str(path)


def test_only_empty_texts_with_allow_empty_is_refused(tmp_path):
    path = tmp_path / "only_empty.jsonl"
    path.write_text('{"_id": "a", "text": ""}\n{"_id": "b", "text": " "}\n')
    message = r"no documents: every text is empty \(2 records, all skipped by --allow-empty\)"
    with pytest.raises(InputError, match=message):
        list(read_documents(str(path), allow_empty=True))
    path.write_text('{"_id": "a", "text": ""}\n{"_id": "b", "text": "moon"}\n')
    assert [d.id for d in read_documents(str(path), allow_empty=True)] == ["b"]


@pytest.mark.parametrize("command", ["encode", "index", "encode-queries"])
def test_commands_refuse_empty_sources(tmp_path, tiny_model, no_java, capsys, command):
    """`encode`/`index --corpus empty.jsonl` exited 0 with 0 documents / an empty index;
    `encode-queries` (like `search`) read a header-only file as 0 queries."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    header_only = tmp_path / "header_only.tsv"
    header_only.write_text("id\ttext\n")
    args = {"encode": ["--corpus", str(empty), "--output", str(tmp_path / "out")],
            "index": ["--corpus", str(empty), "--index", str(tmp_path / "out")],
            "encode-queries": ["--queries", str(header_only), "--output", str(tmp_path / "q.tsv"),
                               "--format", "anserini-tsv"]}[command]
    rc = cli([command, "--model", str(tiny_model), *args, "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and ("no documents: the file is empty" in err or "no queries: the file is empty" in err)
    # nothing written: a rerun with the fixed file must not meet a half-made output (--overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl", "header_only.tsv"]


def test_a_shard_without_documents_only_warns(tmp_path, tiny_model, caplog):
    """35 documents in 40 shards: shard 39 gets none, which is not an error."""
    with caplog.at_level(logging.WARNING, logger="splare_lucene"):
        rc = cli(["encode", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--output", str(tmp_path / "s39"),
                  "--num-shards", "40", "--shard-id", "39", "--device", "cpu"])
    assert rc == 0
    assert any("got no documents: the corpus has fewer documents than --num-shards 40" in r.getMessage()
               for r in caplog.records)


# -- 4. small messages -----------------------------------------------------------------------------


def test_search_refuses_an_empty_query_before_loading_anything(tmp_path, capsys):
    rc = cli(["search", "--model", str(tmp_path / "no-such-model"), "--index", str(tmp_path), "--query", "  "])
    assert rc == 1 and "the query is empty" in capsys.readouterr().err


@pytest.mark.parametrize("query, warned", [("!!!???", True), ("¿¡…?", True), ("C++", False), ("月", False)])
def test_search_warns_about_a_query_without_letters_or_digits(tmp_path, caplog, query, warned):
    """Such a query still searches (its latents come from the punctuation tokens), with a warning
    before the model loads (here it is missing, so the command stops right after)."""
    rc = cli(["search", "--model", str(tmp_path / "no-such-model"), "--index", str(tmp_path), "--query", query])
    assert rc == 1
    assert any("has no letters or digits" in r.getMessage() for r in caplog.records) is warned


@pytest.mark.java
def test_search_index_that_is_a_file(tmp_path, tiny_model):
    from splare_lucene.search import SplareQueryEncoder, open_searcher

    index = tmp_path / "index_is_file"
    index.write_text("not an index")
    with pytest.raises(ConfigError, match="is a file, not an index directory"):
        open_searcher(index, SplareQueryEncoder.from_pretrained(tiny_model, device="cpu"))


def test_model_without_sae_config_names_the_file_and_the_fix(tmp_path, tiny_model):
    from splare_lucene.encoder import SplareEncoder

    model = tmp_path / "tiny_nosae_cfg"
    shutil.copytree(tiny_model, model)
    missing = next(model.rglob("sae_config.json"))
    missing.unlink()
    with pytest.raises(CheckpointError, match=rf"missing SAE config file {re.escape(str(missing))}(.|\n)*"
                                              r"splare-lucene assemble --backbone"):
        SplareEncoder.from_pretrained(model, device="cpu")
