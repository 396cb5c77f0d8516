"""Latent labels (issue 13, section 1): per-token activations on the encoder's own path, top
contexts equal to a brute-force search over every activation, the bounded top-n table, the
Neuronpedia import and its checks, and labels being optional (absent: nothing changes)."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.errors import CheckpointError, ConfigError, InputError
from splare_lucene.explain.labels import (TopContexts, build_labels, context_window, import_neuronpedia,
                                          load_latent_labels, save_latent_labels)
from splare_lucene.explain.records import LABELS_NAME, LatentContext, LatentLabel, LatentLabels
from splare_lucene.types import Document

from conftest import DEMO_DIR, read_jsonl


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from splare_lucene.encoder import SplareEncoder

    return SplareEncoder.from_pretrained(tiny_model, device="cpu")


def _docs(n: int | None = None) -> list[Document]:
    rows = read_jsonl(DEMO_DIR / "corpus.jsonl")[:n]
    return [Document(r["_id"], f"{r['title']} {r['text']}") for r in rows]


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(tiny_model, path)
    return path


def test_token_activations_max_over_tokens_is_the_pooled_vector(encoder):
    """The per-token values are the ones pooling takes the max of: max over a text's pooled
    tokens equals encoder.pooled (before top-k), on both sides."""
    import torch

    from splare_lucene.explain.activations import token_activations

    texts = [d.text for d in _docs(6)] + ["bees pollinate flowers"]
    for kind in ("document", "query"):
        acts = token_activations(encoder, texts, kind=kind)
        with torch.inference_mode():
            pooled = encoder.pooled(texts, kind, apply_top_k=False).float()
        for a, row, text in zip(acts, pooled, texts):
            torch.testing.assert_close(a.values.max(dim=0).values, row, rtol=1e-5, atol=1e-6)
            # every pooled token has its place in the text, and spells what the text says there
            assert all(text[s:e] == t for t, (s, e) in zip(a.tokens.tokens, a.tokens.spans) if s >= 0)
            assert a.values.shape == (len(a.tokens.tokens), encoder.d_sae)


def test_top_contexts_equal_brute_force_over_every_activation(encoder):
    """build_labels (batches of 3 documents, so the running table is merged many times) keeps
    exactly the top-n (activation, token, document) of each latent that a search over every
    activation of every token of every document finds."""
    from splare_lucene.explain.activations import token_activations

    docs = _docs(12)
    top_n = 4
    labels = build_labels(encoder, docs, top_n=top_n, context_words=2, batch_size=3, progress=False)
    everything = []  # (latent, activation, doc id, token)
    for doc in docs:
        a = token_activations(encoder, [doc.text])[0]
        values = a.values.numpy()
        for pos, latent in zip(*np.nonzero(values > 0)):
            everything.append((int(latent), float(values[pos, latent]), doc.id, a.tokens.tokens[pos]))
    assert everything, "the tiny model activates some latents"
    for latent in range(encoder.d_sae):
        want = sorted((x for x in everything if x[0] == latent), key=lambda x: -x[1])[:top_n]
        got = labels.get(latent)
        if not want:
            assert got is None
            continue
        np.testing.assert_allclose([c.activation for c in got.top], [w[1] for w in want], rtol=1e-4)
        # the occurrence holding each value (values repeat only for repeated tokens in one context)
        assert {(c.doc_id, c.token, round(c.activation, 4)) for c in got.top} == \
            {(w[2], w[3], round(w[1], 4)) for w in want}
    assert labels.sources[0]["documents"] == 12 and labels.sources[0]["top_n"] == top_n
    assert labels.model_fingerprint == encoder.fingerprint


def test_constructed_case_the_known_maximising_token_is_first(encoder):
    """A latent's first context is the token that maximises it: found here by hand in one text
    where one token dominates (the largest activation of all), then recovered among other texts."""
    from splare_lucene.explain.activations import token_activations

    docs = _docs(20)
    best = max(((float(a.values.max()), d, a) for d in docs for a in token_activations(encoder, [d.text])),
               key=lambda x: x[0])
    value, doc, acts = best
    pos, latent = divmod(int(acts.values.argmax()), encoder.d_sae)
    label = build_labels(encoder, docs, top_n=2, context_words=3, batch_size=7, progress=False).get(latent)
    first = label.top[0]
    assert (first.doc_id, first.token) == (doc.id, acts.tokens.tokens[pos])
    assert first.activation == pytest.approx(value, rel=1e-5)
    start, end = acts.tokens.spans[pos]
    assert (first.left, first.right) == context_window(doc.text, start, end, 3)
    assert first.token in doc.text and first.left.strip() in doc.text


def test_top_n_table_memory_is_bounded_and_exact():
    """The table never holds more than top_n contexts per latent (top_n * d_sae in all), asks for
    a context only for rows it keeps, and ends equal to a top-n over all rows."""
    import torch

    g = torch.Generator().manual_seed(0)
    d_sae, top_n = 6, 3
    table = TopContexts(d_sae, top_n)
    rows, asked = [], []
    for _ in range(40):
        batch = torch.relu(torch.randn(int(torch.randint(1, 9, (1,), generator=g)), d_sae, generator=g))
        base = len(rows)
        rows.extend(batch)

        def make(i, base=base):
            asked.append(base + i)
            return LatentContext(0.0, f"t{base + i}", "", "", "d")

        table.add(batch, make)
        assert len(table.contexts) <= top_n * d_sae
        assert table.values.shape == (top_n, d_sae)
    everything = torch.stack(rows)  # (N, d_sae)
    for latent, label in table.labels().items():
        want = torch.topk(everything[:, latent], top_n).values
        want = want[want > 0]
        np.testing.assert_allclose([c.activation for c in label.top], want.numpy(), rtol=1e-6)
        for c in label.top:  # each kept context is the row that holds its value
            assert everything[int(c.token[1:]), latent] == pytest.approx(c.activation)
    assert len(asked) == len(set(asked)), "a context was made twice"
    assert len(asked) < len(rows), "contexts were made for rows that were not kept"


def test_context_window_keeps_words_and_spaces():
    text = "one two three four five six"
    start = text.index("four")
    assert context_window(text, start, start + 4, 2) == ("two three ", " five six")
    assert context_window(text, 0, 3, 2) == ("", " two three")
    assert context_window(text, start, start + 4, 0) == ("", "")


def test_bad_settings_are_refused(encoder):
    with pytest.raises(ConfigError, match="top_n"):
        TopContexts(4, 0)
    with pytest.raises(ConfigError, match="context_words"):
        build_labels(encoder, _docs(1), context_words=-1, progress=False)
    with pytest.raises(InputError, match="no documents"):
        build_labels(encoder, [], progress=False)


def test_save_is_atomic_and_round_trips(tmp_path):
    labels = LatentLabels(8, "abc", "2026-01-01T00:00:00+00:00", ({"kind": "corpus", "corpus": "c"},),
                          {3: LatentLabel(3, None, (LatentContext(1.5, "moon", "the ", " is", "d1"),)),
                           5: LatentLabel(5, "lunar things", ())})
    path = save_latent_labels(labels, tmp_path)
    assert path == tmp_path / LABELS_NAME and [p.name for p in tmp_path.iterdir()] == [LABELS_NAME]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    back = load_latent_labels(tmp_path)
    assert back == labels
    assert back.label(3) == "moon" and back.label(5) == "lunar things" and back.label(4) == ""


@pytest.mark.parametrize("content, match", [
    ("{not json", "malformed JSON"),
    ('{"format": "other"}', "not a latent labels file"),
    ('{"format": "splare-latent-labels", "version": 99, "d_sae": 4, "latents": {}}', "version 99"),
    ('{"format": "splare-latent-labels", "version": 1, "d_sae": 4, "latents": {"7": {}}}', "latent '7'"),
])
def test_malformed_labels_file_is_refused_with_its_path(tmp_path, content, match):
    (tmp_path / LABELS_NAME).write_text(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_latent_labels(tmp_path)
    assert str(tmp_path / LABELS_NAME) in str(info.value)


def test_labels_of_another_width_are_refused(tmp_path):
    save_latent_labels(LatentLabels(8, None, "", (), {}), tmp_path)
    with pytest.raises(CheckpointError, match="labels 8 latents, but the model has 64"):
        load_latent_labels(tmp_path, d_sae=64)


# -- Neuronpedia import -------------------------------------------------------------------------

def _np_records(sae="6-res-jb", model="gemma-3-270m", n=3):
    return [{"modelId": model, "layer": sae, "index": str(i * 10), "description": f" feature  {i} ",
             "explanationModelName": "gpt-4o-mini", "typeName": "oai_token-act-pair"} for i in range(n)]


@pytest.mark.parametrize("layout", ["array", "explanations", "jsonl", "jsonl.gz"])
def test_neuronpedia_layouts_map_descriptions_onto_latents(tmp_path, layout):
    records = _np_records()
    if layout == "array":
        path = tmp_path / "export.json"
        path.write_text(json.dumps(records))
    elif layout == "explanations":
        path = tmp_path / "export.json"
        path.write_text(json.dumps({"explanations": records}))
    else:
        path = tmp_path / f"batch-0.{layout}"
        lines = "".join(json.dumps(r) + "\n" for r in records)
        path.write_bytes(gzip.compress(lines.encode()) if layout.endswith("gz") else lines.encode())
    descriptions, source = import_neuronpedia([path], d_sae=64)
    assert descriptions == {0: "feature 0", 10: "feature 1", 20: "feature 2"}
    assert source["sae_id"] == "6-res-jb" and source["model_id"] == "gemma-3-270m"


def test_neuronpedia_index_beyond_the_sae_width_names_the_line(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _np_records(n=8)))  # indices up to 70
    with pytest.raises(InputError, match=r"export\.jsonl:8: feature index 70 is outside the model's SAE "
                                         r"\(d_sae = 64"):
        import_neuronpedia([path], d_sae=64)


@pytest.mark.parametrize("record, match", [
    ({"modelId": "m", "layer": "s", "index": "x1", "description": "d"}, "'x1' is not an integer"),
    ({"modelId": "m", "layer": "s", "index": 1}, "needs \"index\" and \"description\""),
])
def test_neuronpedia_bad_records_are_refused(tmp_path, record, match):
    path = tmp_path / "export.json"
    path.write_text(json.dumps([_np_records()[0] | {"layer": "s", "modelId": "m"}, record]))
    with pytest.raises(InputError, match=match) as info:
        import_neuronpedia([path], d_sae=64)
    assert "record 1" in str(info.value) and str(path) in str(info.value)


def test_neuronpedia_several_saes_need_sae_id(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _np_records("6-res-jb") + _np_records("7-res-jb", n=1)))
    with pytest.raises(InputError, match="several SAEs.*--sae-id"):
        import_neuronpedia([path], d_sae=64)
    descriptions, source = import_neuronpedia([path], d_sae=64, sae_id="7-res-jb")
    assert descriptions == {0: "feature 0"} and source["skipped"] == 3
    with pytest.raises(InputError, match="no explanations for --sae-id 9-x"):
        import_neuronpedia([path], d_sae=64, sae_id="9-x")


# -- labels are optional; CLI round trip ----------------------------------------------------------

def test_absent_labels_change_nothing(encoder, model_copy):
    """A model without latent_labels.json loads, encodes and explains as before; adding the file
    changes no vector, no impact and not the model's fingerprint (it only fills labels)."""
    from splare_lucene.encoder import SplareEncoder

    assert load_latent_labels(model_copy) is None
    texts = [d.text for d in _docs(4)]
    before = SplareEncoder.from_pretrained(model_copy, device="cpu")
    plain = before.explain("bees pollinate flowers", texts[0])
    assert all(s.label == "" for s in plain.shared) and plain.labels_source is None
    assert cli(["label-latents", "--model", str(model_copy), "--corpus", str(DEMO_DIR), "--top-n", "2",
                "--device", "cpu"]) == 0
    after = SplareEncoder.from_pretrained(model_copy, device="cpu")
    assert after.fingerprint == before.fingerprint == encoder.fingerprint
    for a, b in zip(before.encode(texts), after.encode(texts)):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.values, b.values)
    labelled = after.explain("bees pollinate flowers", texts[0])
    assert labelled.score == plain.score and [s.product for s in labelled.shared] == [s.product for s in plain.shared]
    assert any(s.label for s in labelled.shared) and labelled.labels_source


def test_cli_label_then_import_keeps_both(model_copy, tmp_path, capsys):
    assert cli(["label-latents", "--model", str(model_copy), "--corpus", str(DEMO_DIR / "corpus.jsonl"),
                "--top-n", "3", "--max-docs", "10", "--context-words", "2", "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    built = load_latent_labels(model_copy)
    assert built.sources[0]["documents"] == 10 and built.sources[0]["max_docs"] == 10
    assert all(len(x.top) <= 3 for x in built.latents.values())
    labelled = sorted(built.latents)
    export = tmp_path / "np.json"
    export.write_text(json.dumps([{"modelId": "m", "layer": "s", "index": labelled[0], "description": "bees"},
                                  {"modelId": "m", "layer": "s", "index": 63, "description": "last one"}]))
    assert cli(["label-latents", "--model", str(model_copy), "--import-neuronpedia", str(export)]) == 0
    merged = load_latent_labels(model_copy)
    assert merged.label(labelled[0]) == "bees" and merged.get(labelled[0]).top == built.get(labelled[0]).top
    assert merged.label(63) == "last one"
    assert [s["kind"] for s in merged.sources] == ["corpus", "neuronpedia"]
    # rebuilding the contexts keeps the imported descriptions
    assert cli(["label-latents", "--model", str(model_copy), "--corpus", str(DEMO_DIR), "--top-n", "1",
                "--device", "cpu"]) == 0
    rebuilt = load_latent_labels(model_copy)
    assert rebuilt.label(63) == "last one" and [s["kind"] for s in rebuilt.sources] == ["corpus", "neuronpedia"]


def test_cli_import_width_error_is_one_line(model_copy, tmp_path, capsys):
    export = tmp_path / "np.jsonl"
    export.write_text(json.dumps({"modelId": "m", "layer": "s", "index": 64, "description": "x"}) + "\n")
    assert cli(["label-latents", "--model", str(model_copy), "--import-neuronpedia", str(export)]) == 1
    err = capsys.readouterr().err
    assert f"{export}:1: feature index 64 is outside the model's SAE (d_sae = 64" in err
    assert not (model_copy / LABELS_NAME).exists()


@pytest.mark.parametrize("argv, match", [
    (["--corpus", "c", "--import-neuronpedia", "f"], "not allowed with"),
    (["--import-neuronpedia", "f", "--top-n", "3"], "--top-n: applies to --corpus"),
    (["--corpus", "c", "--sae-id", "x"], "--sae-id: applies to --import-neuronpedia"),
    (["--corpus", "c", "--top-n", "0"], "--top-n"),
    ([], "one of the arguments --corpus --import-neuronpedia is required"),
])
def test_cli_bad_options_exit_2(argv, match, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["label-latents", *argv])
    assert info.value.code == 2 and match in capsys.readouterr().err


def test_cli_missing_corpus_fails_before_the_model_loads(tiny_model, capsys, monkeypatch):
    from splare_lucene import encoder as encoder_module

    monkeypatch.setattr(encoder_module.SplareEncoder, "from_pretrained",
                        classmethod(lambda *a, **k: pytest.fail("the model was loaded")))
    assert cli(["label-latents", "--model", str(tiny_model), "--corpus", "/nonexistent/corpus.jsonl"]) == 1
    assert "/nonexistent/corpus.jsonl" in capsys.readouterr().err
