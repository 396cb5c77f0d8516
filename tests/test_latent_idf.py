"""Query idf weighting (splare_lucene.latent_idf): counted by `configure --query-idf-corpus`, stored
with the model, applied to queries only, round-tripping through save_pretrained/from_pretrained."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.config import SplareConfig
from splare_lucene.errors import CheckpointError, ConfigError
from splare_lucene.latent_idf import LATENT_DF_NAME, LatentDocumentFrequency, bm25_idf

from conftest import DEMO_DIR

TEXT = ["the moon pulls the tides of the ocean"]


@pytest.fixture(scope="module")
def idf_model(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("idf") / "m"
    assert cli(["configure", "--model", str(tiny_model), "--output", str(out), "--query-idf-power", "0.5",
                "--query-idf-corpus", str(DEMO_DIR), "--device", "cpu"]) == 0
    return out


def test_bm25_idf_is_lucenes_formula():
    got = bm25_idf([0, 1, 4], 4)
    np.testing.assert_allclose(got, [math.log(1 + (4 - df + 0.5) / (df + 0.5)) for df in (0, 1, 4)])
    assert (got > 0).all() and got[0] > got[1] > got[2]
    with pytest.raises(ConfigError, match="must lie in"):
        bm25_idf([5], 4)
    with pytest.raises(ConfigError, match="at least one document"):
        bm25_idf([0], 0)


def test_counts_are_the_documents_holding_each_latent(tiny_model, idf_model):
    from splare_lucene.corpus import read_documents
    from splare_lucene.encoder import SplareEncoder

    counts = LatentDocumentFrequency.load(idf_model)
    plain = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    docs = [d.text for d in read_documents(str(DEMO_DIR))]
    want = np.zeros(plain.d_sae, dtype=np.int64)
    for v in plain.encode(docs, "document"):
        want[plain.quantize(v).indices] += 1
    assert counts.documents == len(docs) and list(counts.df) == want.tolist()
    assert counts.model_fingerprint == plain.fingerprint and counts.document_top_k == 20


def test_queries_are_weighted_after_the_cut_and_documents_are_not(tiny_model, idf_model):
    from splare_lucene.encoder import SplareEncoder

    plain = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    weighted = SplareEncoder.from_pretrained(idf_model, device="cpu")
    idf = LatentDocumentFrequency.load(idf_model).idf()
    q0, q1 = plain.encode(TEXT, "query")[0], weighted.encode(TEXT, "query")[0]
    assert sorted(q0.indices.tolist()) == sorted(q1.indices.tolist())  # the same top-k latents
    by_latent = dict(zip(q1.indices.tolist(), q1.values.tolist()))
    np.testing.assert_allclose([by_latent[i] for i in q0.indices.tolist()], q0.values * idf[q0.indices] ** 0.5,
                               rtol=1e-6)
    d0, d1 = plain.encode(TEXT, "document")[0], weighted.encode(TEXT, "document")[0]
    np.testing.assert_array_equal(d0.indices, d1.indices)
    np.testing.assert_array_equal(d0.values, d1.values)
    # the pseudo-token impacts a searcher sends are round_half_up(weight x scale x idf ** power)
    terms = weighted.terms(q1)
    assert terms == {f"f{i}": int(math.floor(w * 100 + 0.5)) for i, w in by_latent.items()
                     if math.floor(w * 100 + 0.5) > 0}


def test_round_trip_through_save_pretrained_and_the_fingerprint(tiny_model, idf_model, tmp_path):
    from splare_lucene.encoder import SplareEncoder, model_fingerprint

    weighted = SplareEncoder.from_pretrained(idf_model, device="cpu")
    saved = weighted.save_pretrained(tmp_path / "again")
    assert (saved / LATENT_DF_NAME).read_bytes() == (idf_model / LATENT_DF_NAME).read_bytes()
    again = SplareEncoder.from_pretrained(saved, device="cpu")
    assert again.config.query_idf_power == 0.5 == SplareConfig.load(saved).query_idf_power
    assert again.fingerprint == weighted.fingerprint != SplareEncoder.from_pretrained(tiny_model, device="cpu").fingerprint
    np.testing.assert_array_equal(again.encode(TEXT, "query")[0].values, weighted.encode(TEXT, "query")[0].values)
    # the counts are part of the fingerprint: other counts, another model
    obj = json.loads((saved / LATENT_DF_NAME).read_text())
    obj["df"][0] = min(obj["documents"], obj["df"][0] + 1)
    (saved / LATENT_DF_NAME).write_text(json.dumps(obj))
    assert model_fingerprint(saved, again.config) != again.fingerprint
    # when and from where the counts were made is not hashed: a recount of the same documents
    # gives the same fingerprint
    obj = json.loads((idf_model / LATENT_DF_NAME).read_text())
    (saved / LATENT_DF_NAME).write_text(json.dumps({**obj, "created": "2030-01-01T00:00:00Z", "source": "elsewhere"}))
    assert model_fingerprint(saved, again.config) == again.fingerprint
    # a config without the field (older models) and one with 0 hash alike
    cfg = SplareConfig.load(tiny_model)
    assert "query_idf_power" not in cfg.fingerprint_dict() and cfg.query_idf_power == 0.0


def test_missing_malformed_or_stale_counts_are_refused(idf_model, tmp_path):
    import shutil

    from splare_lucene.encoder import SplareEncoder

    broken = tmp_path / "broken"
    shutil.copytree(idf_model, broken)
    (broken / LATENT_DF_NAME).unlink()
    with pytest.raises(CheckpointError, match="latent_df.json is missing.*--query-idf-corpus"):
        SplareEncoder.from_pretrained(broken, device="cpu")
    (broken / LATENT_DF_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="malformed JSON"):
        SplareEncoder.from_pretrained(broken, device="cpu")
    obj = json.loads((idf_model / LATENT_DF_NAME).read_text())
    (broken / LATENT_DF_NAME).write_text(json.dumps({**obj, "document_top_k": 7}))
    with pytest.raises(CheckpointError, match="document_top_k 7 .the model: 20.*recount"):
        SplareEncoder.from_pretrained(broken, device="cpu")
    (broken / LATENT_DF_NAME).write_text(json.dumps({**obj, "df": obj["df"][:-1]}))
    with pytest.raises(CheckpointError, match="width 63 .the model: 64"):
        SplareEncoder.from_pretrained(broken, device="cpu")
    (broken / LATENT_DF_NAME).write_text(json.dumps({**obj, "df": [-1] + obj["df"][1:]}))
    with pytest.raises(CheckpointError, match="malformed.*one integer in"):
        SplareEncoder.from_pretrained(broken, device="cpu")
    with pytest.raises(ConfigError, match="query_idf_power must be a finite number >= 0"):
        SplareConfig.load(idf_model).replace(query_idf_power=-1.0)


def test_configure_refusals_and_dropping_the_weighting(tiny_model, idf_model, tmp_path, capsys):
    out = tmp_path / "m"
    assert cli(["configure", "--model", str(tiny_model), "--output", str(out), "--query-idf-power", "1"]) == 1
    assert "give them with --query-idf-corpus" in capsys.readouterr().err and not out.exists()
    assert cli(["configure", "--model", str(tiny_model), "--output", str(out), "--query-idf-corpus",
                str(DEMO_DIR)]) == 1
    assert "give --query-idf-power too" in capsys.readouterr().err and not out.exists()
    # a document-side change would leave the counts stale
    assert cli(["configure", "--model", str(idf_model), "--output", str(out), "--doc-top-k", "5"]) == 1
    assert "--doc-top-k changes the document vectors" in capsys.readouterr().err and not out.exists()
    # a query-side change keeps them; power 0 drops them
    assert cli(["configure", "--model", str(idf_model), "--output", str(out), "--query-top-k", "4"]) == 0
    assert (out / LATENT_DF_NAME).read_bytes() == (idf_model / LATENT_DF_NAME).read_bytes()
    assert cli(["configure", "--model", str(idf_model), "--output", str(out), "--query-idf-max-docs", "5"]) == 1
    assert "--query-idf-max-docs limits --query-idf-corpus" in capsys.readouterr().err
    assert cli(["configure", "--model", str(idf_model), "--output", str(tmp_path / "x"), "--query-idf-corpus",
                str(tmp_path / "nope")]) == 1
    assert "no such file or folder" in capsys.readouterr().err and not (tmp_path / "x").exists()
    off = tmp_path / "off"
    assert cli(["configure", "--model", str(idf_model), "--output", str(off), "--query-idf-power", "0"]) == 0
    assert not (off / LATENT_DF_NAME).exists() and SplareConfig.load(off).query_idf_power == 0.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_training_writes_a_model_without_the_stale_weighting(idf_model, tmp_path, caplog):
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.train.trainer import TrainConfig, train
    from splare_lucene.train.data import TrainExample

    encoder = SplareEncoder.from_pretrained(idf_model, device="cpu")
    examples = [TrainExample("moon tides", ("the moon pulls the tides", "bread rises in the oven"))] * 4
    cfg = TrainConfig(max_steps=1, batch_size=2, negatives=1, query_max_length=16, doc_max_length=16,
                      lora_rank=2, lora_alpha=4)
    train(encoder, examples, cfg, tmp_path / "ft")
    assert "written without it" in caplog.text
    assert SplareConfig.load(tmp_path / "ft").query_idf_power == 0.0 and not (tmp_path / "ft" / LATENT_DF_NAME).exists()

