"""benchmarks/splare_vs_splade.py --configure: every evaluated model gets the same inference
settings through `splare-lucene configure`, and its evaluation cache follows the model's
fingerprint."""

from __future__ import annotations

import pytest

from splare_lucene.config import SplareConfig
from splare_lucene.encoder import model_fingerprint

from conftest import load_benchmark


def _bench():
    return load_benchmark("splare_vs_splade")


def test_configured_applies_the_settings_and_rewrites_a_stale_copy(tiny_model, tmp_path):
    bench = _bench()
    settings = ["--query-top-k", "3", "--text-normalization", "lowercase"]
    out = bench.configured("splare-ft", tiny_model, settings, tmp_path)
    assert out == tmp_path / "splare-ft-configured"
    config = SplareConfig.load(out)
    assert config.query.top_k == 3 and config.text_normalization == "lowercase"
    assert config.document == SplareConfig.load(tiny_model).document
    fingerprint = model_fingerprint(out, config)
    assert fingerprint != model_fingerprint(tiny_model, SplareConfig.load(tiny_model))
    # a second invocation with other settings replaces the copy (never evaluates a stale one)
    out = bench.configured("splare-ft", tiny_model, ["--query-top-k", "5"], tmp_path)
    assert SplareConfig.load(out).query.top_k == 5 and SplareConfig.load(out).text_normalization == "none"


def test_configured_returns_the_model_when_nothing_changes(tiny_model, tmp_path):
    config = SplareConfig.load(tiny_model)
    same = ["--query-top-k", str(config.query.top_k)]
    assert _bench().configured("splare-base", tiny_model, same, tmp_path) == tiny_model
    assert not (tmp_path / "splare-base-configured").exists()


def test_configured_refuses_an_unknown_option(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _bench().configured("splare-ft", tiny_model, ["--top-k", "3"], tmp_path)
    assert "--top-k" in capsys.readouterr().err


def test_a_trained_model_is_reused_only_with_the_same_case_augmentation(tiny_model, tmp_path):
    svs = _bench()
    import argparse
    import json
    import shutil

    args = argparse.Namespace(lr=5e-4, vocab_lr=5e-5, steps=200, batch_size=8, seed=0, vocab_train_top_k=True,
                              temperature=10.0, doc_max_length=96, lora_rank=16, loss="infonce", negatives=1,
                              case_augmentation=0.0, base_model=tiny_model)
    config = {"max_steps": 200, "batch_size": 8, "lr": 5e-4, "seed": 0, "train_top_k": False, "temperature": 10.0,
              "doc_max_length": 96, "lora_rank": 16, "loss": "infonce", "negatives": 1,
              "lora_alpha": 32, "query_max_length": 32, "flops_query": 1e-4, "flops_doc": 1e-4}  # before the setting
    out = tmp_path / "splare-ft"
    shutil.copytree(tiny_model, out)  # a trained SPLARE model holds its base's SAE
    (out / "train_report.json").write_text(json.dumps({"config": config, "seconds_this_run": 12.0}))
    assert svs.train_model("splare", args, out) == (out, 12.0)  # no setting recorded: it was off
    # a resumed run's report: every invocation's seconds, not only the last one's
    (out / "train_report.json").write_text(json.dumps({"config": config, "seconds_this_run": 12.0,
                                                       "seconds_total": 480.0}))
    assert svs.train_model("splare", args, out) == (out, 480.0)
    args.case_augmentation = 0.5
    with pytest.raises(SystemExit, match="case_augmentation"):
        svs.train_model("splare", args, out)


def _other_sae_copy(model, dest):
    """A copy of ``model`` whose SAE weights differ in one value (same names, shapes, dtype)."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(model, dest)
    path = dest / SplareConfig.load(dest).sae / "sae.safetensors"
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] += 1
    save_file(tensors, str(path))
    return dest


def test_a_cached_model_with_another_sae_is_refused(tiny_model, tmp_path):
    """A work folder from a run before the default SAE changed: its splare-base and splare-ft hold the
    old SAE and are refused (never silently evaluated as the new default's), naming the folder."""
    svs = _bench()
    import argparse
    import json

    svs.check_same_sae(tiny_model, tiny_model, "the base model")  # the same SAE passes
    sae_folder = tiny_model / SplareConfig.load(tiny_model).sae
    svs.check_same_sae(tiny_model, sae_folder, "the default model")  # a bare SAE folder as reference
    stale = _other_sae_copy(tiny_model, tmp_path / "splare-ft")
    with pytest.raises(SystemExit, match="another SAE.*remove it or pass another --out"):
        svs.check_same_sae(stale, sae_folder, "the default model")
    args = argparse.Namespace(lr=5e-4, vocab_lr=5e-5, steps=200, batch_size=8, seed=0, vocab_train_top_k=True,
                              temperature=10.0, doc_max_length=96, lora_rank=16, loss="infonce", negatives=1,
                              case_augmentation=0.0, base_model=tiny_model)
    (stale / "train_report.json").write_text(json.dumps({"config": {}, "seconds_total": 1.0}))
    with pytest.raises(SystemExit, match=str(stale)):
        svs.train_model("splare", args, stale)


def test_configured_counts_query_idf_once_and_keeps_a_model_that_holds_the_counts(tiny_model, tmp_path):
    """--configure with the default model's query idf options: the counts are made once (a copy made
    from the same model with the same settings is kept, since counting encodes the whole corpus), a
    change of either rewrites the copy, and a model that already holds counts from that corpus (the
    default model) is evaluated as it is."""
    from conftest import DEMO_DIR

    from splare_lucene.latent_idf import LatentDocumentFrequency

    bench = _bench()
    settings = ["--query-idf-power", "1", "--query-idf-corpus", str(DEMO_DIR)]
    out = bench.configured("splare-ft", tiny_model, settings, tmp_path)
    assert out == tmp_path / "splare-ft-configured" and SplareConfig.load(out).query_idf_power == 1.0
    counts = LatentDocumentFrequency.load(out)
    created = (out / "latent_df.json").stat().st_mtime_ns
    assert bench.configured("splare-ft", tiny_model, settings, tmp_path) == out
    assert (out / "latent_df.json").stat().st_mtime_ns == created  # not counted again
    # the weighted copy holds counts from that corpus: nothing to change
    assert bench.holds_counts(out, str(DEMO_DIR), None)
    assert bench.configured("splare-base", out, settings, tmp_path / "other") == out
    assert not bench.holds_counts(out, str(DEMO_DIR), 2)  # counted over all, not the first 2
    assert not bench.holds_counts(tiny_model, str(DEMO_DIR), None)  # no counts at all
    # other settings: counted again, over the first 2 documents
    again = bench.configured("splare-ft", tiny_model, settings + ["--query-idf-max-docs", "2"], tmp_path)
    assert again == out and LatentDocumentFrequency.load(out).documents == 2 != counts.documents


def test_configured_counts_query_idf_for_the_vocabulary_twin(tiny_backbone, tmp_path):
    """The twin gets the same weighting: its counts are one per vocabulary entry."""
    from conftest import DEMO_DIR

    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.latent_idf import LatentDocumentFrequency

    twin = tmp_path / "twin"
    SplareEncoder.vocabulary(str(tiny_backbone), device="cpu").save_pretrained(twin)
    out = _bench().configured("splade-ft", twin, ["--query-idf-power", "1", "--query-idf-corpus", str(DEMO_DIR)],
                              tmp_path)
    encoder = SplareEncoder.from_pretrained(out, device="cpu")
    assert len(LatentDocumentFrequency.load(out).df) == encoder.head.width
    assert encoder.encode(["bees pollinate flowers"], "query")[0].nnz > 0


def test_a_given_splare_ft_model_is_checked_against_the_recipe(tiny_model, tmp_path):
    """--splare-ft-model (e.g. the default model): evaluated instead of a trained splare-ft only when
    its train_report.json shows the run's recipe and it holds the base model's SAE."""
    import argparse
    import json
    import shutil

    svs = _bench()
    args = argparse.Namespace(lr=2e-4, vocab_lr=5e-5, steps=200, batch_size=8, seed=0, vocab_train_top_k=True,
                              temperature=10.0, doc_max_length=96, lora_rank=16, loss="infonce", negatives=1,
                              case_augmentation=0.5, base_model=tiny_model)
    remedy = "leave --splare-ft-model out"
    given = tmp_path / "given"
    shutil.copytree(tiny_model, given)
    with pytest.raises(SystemExit, match="no train_report.json"):
        svs.trained_with_recipe("splare", args, given, remedy=remedy)
    config = {"max_steps": 200, "batch_size": 8, "lr": 2e-4, "seed": 0, "train_top_k": False, "temperature": 10.0,
              "doc_max_length": 96, "lora_rank": 16, "loss": "infonce", "negatives": 1, "case_augmentation": 0.5,
              "lora_alpha": 32, "query_max_length": 32, "flops_query": 1e-4, "flops_doc": 1e-4}
    (given / "train_report.json").write_text(json.dumps({"config": config, "seconds_total": 1521.0}))
    assert svs.trained_with_recipe("splare", args, given, remedy=remedy) == 1521.0
    args.lr = 5e-4
    with pytest.raises(SystemExit, match=r"another recipe \({'lr'.*leave --splare-ft-model out"):
        svs.trained_with_recipe("splare", args, given, remedy=remedy)
    args.lr = 2e-4
    (given / "train_report.json").write_text(json.dumps({"config": {**config, "flops_doc": 1e-3}}))
    with pytest.raises(SystemExit, match="flops_doc"):  # a fixed value of the recipe differs
        svs.trained_with_recipe("splare", args, given, remedy=remedy)
    (given / "train_report.json").write_text(json.dumps({"config": config, "seconds_total": 1521.0}))
    other = _other_sae_copy(given, tmp_path / "other")
    with pytest.raises(SystemExit, match="another SAE.*leave --splare-ft-model out"):
        svs.trained_with_recipe("splare", args, other, remedy=remedy)
