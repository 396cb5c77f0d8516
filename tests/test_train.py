"""Retrieval fine-tuning on tiny models: the vocabulary (SPLADE) head, data sources, KL and
InfoNCE training with LoRA, saving a loadable model directory, and resuming a checkpoint."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from splare_lucene.cli.main import main as cli
from splare_lucene.encoder import SplareEncoder
from splare_lucene.errors import ConfigError, InputError
from splare_lucene.train import trainer as trainer_mod
from splare_lucene.train.data import load_examples
from splare_lucene.train.trainer import TrainConfig, recipe_config, train

from conftest import DEMO_DIR, adapt_args, interrupt_adapt_at_step_3, read_jsonl


def _write_examples(path, with_scores=True, n=12):
    docs = [d["title"] + " " + d["text"] for d in read_jsonl(DEMO_DIR / "corpus.jsonl")]
    queries = [q["text"] for q in read_jsonl(DEMO_DIR / "queries.jsonl")]
    with path.open("w") as f:
        for i in range(n):
            ex = {"query": queries[i % len(queries)], "positive": docs[i], "negatives": [docs[i + 1], docs[i + 2]]}
            if with_scores:
                ex["scores"] = [5.0, 1.0, 0.5]
            f.write(json.dumps(ex) + "\n")
    return path


def test_vocab_head_matches_lm_logits(tiny_backbone):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    enc = SplareEncoder.vocabulary(str(tiny_backbone), device="cpu")
    assert enc.config.representation == "vocab" and enc.config.layer == 3
    text = "bees pollinate flowers"
    tok = AutoTokenizer.from_pretrained(str(tiny_backbone))
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_backbone)).eval()
    with torch.no_grad():
        logits = lm(**tok([text], return_tensors="pt")).logits[0, 1:]  # drop BOS
    pooled = torch.log1p(logits.relu()).max(0).values
    top = pooled.topk(enc.config.query.top_k)
    expected = {int(i): float(v) for i, v in zip(top.indices, top.values) if v > 0}
    got = enc.encode([text], "query")[0].to_dict()
    assert set(got) == set(expected)
    np.testing.assert_allclose([got[i] for i in expected], list(expected.values()), rtol=1e-4, atol=1e-5)
    terms = enc.terms(enc.encode([text], "query")[0])
    assert all(t.isascii() and " " not in t for t in terms)
    from urllib.parse import unquote

    assert {tok.convert_tokens_to_ids(unquote(t)) for t in terms} == set(got)


def test_jsonl_examples_and_errors(tmp_path):
    path = _write_examples(tmp_path / "ex.jsonl")
    ex = load_examples(str(path), 1, seed=0)
    assert len(ex) == 12 and all(len(e.docs) == 2 and len(e.scores) == 2 and e.scores[0] == 5.0 for e in ex)
    with pytest.raises(InputError, match="negatives asks for 3"):
        load_examples(str(path), 3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positive": "p", "negatives": ["n"], "scores": [1.0]}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: 'scores' has 1 values"):
        load_examples(str(bad), 1)


@pytest.mark.java
def test_beir_folder_examples_mine_bm25_negatives(tmp_path):
    ex = load_examples(str(DEMO_DIR), 2, split="test", seed=0, cache_dir=tmp_path)
    queries = {q["text"]: q["_id"] for q in read_jsonl(DEMO_DIR / "queries.jsonl")}
    qrels = {line.split("\t")[0]: line.split("\t")[1] for line in (DEMO_DIR / "qrels/test.tsv").read_text().splitlines()[1:]}
    docs = {d["_id"]: (d["title"] + " " + d["text"]) for d in read_jsonl(DEMO_DIR / "corpus.jsonl")}
    assert ex and all(len(e.docs) == 3 and e.scores is None for e in ex)
    for e in ex:
        positive = docs[qrels[queries[e.query]]]
        assert e.docs[0] == positive and positive not in e.docs[1:]


def test_train_kl_writes_loadable_model_that_differs(tiny_model, tmp_path):
    data = _write_examples(tmp_path / "ex.jsonl")
    out = tmp_path / "trained"
    assert cli(["train", "--model", str(tiny_model), "--data", str(data), "--output", str(out),
                "--batch-size", "4", "--max-steps", "3", "--lr", "1e-2", "--lora-rank", "4",
                "--temperature", "10", "--device", "cpu"]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["loss"] == "kl" and report["steps"] == 3 and len(report["history"]) == 3
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "sae" / "sae.safetensors").is_file()
    trained = SplareEncoder.from_pretrained(out, device="cpu")
    base = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    assert trained.config.adapter == "adapter"
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == trained.config.backbone  # no machine-local path
    assert not (out / "adapter" / "README.md").exists()
    assert adapter_cfg["target_modules"] == sorted(adapter_cfg["target_modules"])  # not peft's set order
    assert trained.config.query == base.config.query and trained.config.document == base.config.document
    a = base.encode(["bees pollinate flowers"])[0].to_dict()
    b = trained.encode(["bees pollinate flowers"])[0].to_dict()
    assert a != b
    assert not (tmp_path / "trained.checkpoint").exists()
    # a fine-tuned model is a valid start: training restarts from its backbone + SAE
    assert SplareEncoder.from_pretrained(out, device="cpu", without_adapter=True).encode(
        ["bees pollinate flowers"])[0].to_dict() == a
    again = tmp_path / "again"
    assert cli(["train", "--model", str(out), "--data", str(data), "--output", str(again),
                "--batch-size", "4", "--max-steps", "1", "--lora-rank", "4", "--device", "cpu"]) == 0
    assert SplareEncoder.from_pretrained(again, device="cpu").config.adapter == "adapter"


def test_train_vocab_baseline_with_infonce(tiny_backbone, tmp_path):
    data = _write_examples(tmp_path / "ex.jsonl", with_scores=False)
    out = tmp_path / "splade"
    assert cli(["train", "--vocab-backbone", str(tiny_backbone), "--data", str(data), "--output", str(out),
                "--batch-size", "4", "--max-steps", "2", "--lora-rank", "4", "--device", "cpu"]) == 0
    model = SplareEncoder.from_pretrained(out, device="cpu")
    assert model.config.representation == "vocab" and not (out / "sae").exists()
    assert json.loads((out / "train_report.json").read_text())["loss"] == "infonce"
    assert model.encode(["bees"], "query")[0].nnz > 0


def test_train_top_k_bounds_the_training_vectors(tiny_backbone, tmp_path):
    data = _write_examples(tmp_path / "ex.jsonl", with_scores=False)
    out = tmp_path / "splade-topk"
    assert cli(["train", "--vocab-backbone", str(tiny_backbone), "--data", str(data), "--output", str(out),
                "--batch-size", "4", "--max-steps", "2", "--lora-rank", "4", "--device", "cpu",
                "--train-top-k"]) == 0
    report = json.loads((out / "train_report.json").read_text())
    model = SplareEncoder.from_pretrained(out, device="cpu")
    assert report["config"]["train_top_k"] is True
    for record in report["history"]:
        assert 0 < record["nnz_q"] <= model.config.query.top_k
        assert 0 < record["nnz_d"] <= model.config.document.top_k


def test_kl_without_scores_is_refused(tiny_model, tmp_path):
    data = _write_examples(tmp_path / "ex.jsonl", with_scores=False)
    assert cli(["train", "--model", str(tiny_model), "--data", str(data), "--output", str(tmp_path / "o"),
                "--loss", "kl", "--device", "cpu"]) == 1


def test_resume_continues_where_it_stopped(tiny_model, tmp_path, monkeypatch):
    from conftest import crashed_training_checkpoint

    data = _write_examples(tmp_path / "ex.jsonl", n=16)
    examples = load_examples(str(data), 1, seed=0)
    cfg = TrainConfig(batch_size=4, max_steps=4, save_every=2, lr=1e-2, lora_rank=4, temperature=10.0)
    out = tmp_path / "run"

    full = train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), examples, cfg, tmp_path / "ref",
                 progress=False)

    state_file = crashed_training_checkpoint(tiny_model, examples, cfg, out, monkeypatch)
    assert state_file == tmp_path / "run.checkpoint" / "trainer_state.pt"
    assert state_file.is_file() and not out.exists()
    resumed = train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), examples, cfg, out, progress=False)
    assert resumed["steps"] == 4 and len(resumed["history"]) == 4
    for a, b in zip(full["history"], resumed["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3, abs=1e-4)
    assert full["seconds_total"] == pytest.approx(full["seconds_this_run"], abs=0.11)  # never resumed


def test_seconds_total_adds_the_checkpointed_seconds_of_the_runs_a_resume_continues(tiny_model, tmp_path,
                                                                                  monkeypatch):
    from conftest import crashed_training_checkpoint

    data = _write_examples(tmp_path / "ex.jsonl", n=16)
    examples = load_examples(str(data), 1, seed=0)
    cfg = TrainConfig(batch_size=4, max_steps=4, save_every=2, lr=1e-2, lora_rank=4, temperature=10.0)
    out = tmp_path / "run"
    state_file = crashed_training_checkpoint(tiny_model, examples, cfg, out, monkeypatch)
    saved = torch.load(state_file, weights_only=True)
    assert saved["seconds"] > 0
    saved["seconds"] = 1000.0  # as if the first two steps had taken 1,000 s
    torch.save(saved, state_file)
    resumed = train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), examples, cfg, out, progress=False)
    assert resumed["seconds_total"] == pytest.approx(1000.0 + resumed["seconds_this_run"], abs=0.11)


def test_train_config_validation():
    with pytest.raises(ConfigError, match="loss must be one of"):
        TrainConfig(loss="mse")


def test_mntp_loss_predicts_masked_tokens_from_previous_position(tiny_backbone):
    from splare_lucene.backbone import load_backbone, tokenize
    from splare_lucene.train.mntp import mask_token_id, mntp_loss

    bb = load_backbone(str(tiny_backbone), 3, with_lm_head=True)
    ids, attn, maskable = tokenize(bb, ["bees pollinate flowers and crops"], 16, "cpu")
    gen = torch.Generator().manual_seed(0)
    loss = mntp_loss(bb, ids, attn, maskable, mask_token_id(bb.tokenizer), 1.0, gen)
    # ratio 1: every non-special token from position 1 on is masked and predicted from i-1
    masked = ids.masked_fill(maskable & (torch.arange(ids.shape[1]) > 0), mask_token_id(bb.tokenizer))
    from splare_lucene.backbone import bidirectional_mask

    with torch.no_grad():
        h = bb.model(input_ids=masked, attention_mask=bidirectional_mask(attn, torch.float32)).last_hidden_state
        logits = bb.lm_head(bb.final_norm(h[0, :-1]))
        sel = maskable[0, 1:]
        expected = torch.nn.functional.cross_entropy(logits[sel], ids[0, 1:][sel])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_adapt_then_train_keeps_both_adapters(tiny_model, tmp_path):
    adapted = tmp_path / "adapted"
    assert cli(["adapt", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--output", str(adapted),
                "--steps", "3", "--lr", "1e-2", "--lora-rank", "4", "--batch-size", "4", "--device", "cpu"]) == 0
    enc = SplareEncoder.from_pretrained(adapted, device="cpu")
    assert enc.config.bidirectional and enc.config.mntp_adapter == "mntp_adapter"
    report = json.loads((adapted / "mntp_report.json").read_text())
    assert len(report["loss_history"]) == 3
    # the adapter only touches blocks 0..L, so it loads onto the cut model
    adapter_cfg = json.loads((adapted / "mntp_adapter" / "adapter_config.json").read_text())
    assert "layers\\.(0|1|2)\\." in adapter_cfg["target_modules"]
    data = _write_examples(tmp_path / "ex.jsonl")
    out = tmp_path / "trained"
    assert cli(["train", "--model", str(adapted), "--data", str(data), "--output", str(out), "--batch-size", "4",
                "--max-steps", "1", "--lora-rank", "4", "--device", "cpu"]) == 0
    trained = SplareEncoder.from_pretrained(out, device="cpu")
    assert (out / "mntp_adapter").is_dir() and trained.config.adapter == "adapter"
    assert trained.encode(["bees"], "query")[0].nnz > 0


def test_adapt_resumes_its_checkpoint_with_the_same_batches(tiny_model, tmp_path, monkeypatch, capsys):
    """A run stopped at step 3 keeps its step-2 checkpoint and writes no model; the same command
    again resumes there and ends with the loss history of an uninterrupted run, the checkpoint
    removed once the model is written."""
    assert cli(adapt_args(tiny_model, tmp_path / "ref")) == 0
    reference = json.loads((tmp_path / "ref" / "mntp_report.json").read_text())
    assert not (tmp_path / "ref.checkpoint").exists()

    out, ckpt = tmp_path / "run", tmp_path / "run.checkpoint"
    interrupt_adapt_at_step_3(tiny_model, out, monkeypatch)
    assert (ckpt / "mntp_state.pt").is_file() and not out.exists()
    saved = torch.load(ckpt / "mntp_state.pt", weights_only=True)
    assert saved["step"] == 2 and saved["seconds"] > 0
    saved["seconds"] = 1000.0  # as if the first two steps had taken 1,000 s
    torch.save(saved, ckpt / "mntp_state.pt")
    assert cli(adapt_args(tiny_model, out)) == 0
    report = json.loads((out / "mntp_report.json").read_text())
    assert report["loss_history"] == pytest.approx(reference["loss_history"], rel=1e-4)
    assert report["seconds"] == pytest.approx(1000.0 + report["seconds_this_run"], abs=0.11)
    assert not ckpt.exists()


def test_adapt_refuses_a_checkpoint_of_other_settings_and_no_resume_starts_over(tiny_model, tmp_path,
                                                                                 monkeypatch, capsys):
    out, ckpt = tmp_path / "run", tmp_path / "run.checkpoint"
    interrupt_adapt_at_step_3(tiny_model, out, monkeypatch)
    capsys.readouterr()
    assert cli(adapt_args(tiny_model, out, "--mask-ratio", "0.3")) == 1
    err = capsys.readouterr().err
    assert "other settings: mask_ratio 0.2 (now 0.3)" in err and "--no-resume" in err
    assert (ckpt / "mntp_state.pt").is_file() and not out.exists()  # nothing removed by the refusal
    assert cli(adapt_args(tiny_model, out, "--mask-ratio", "0.3", "--no-resume")) == 0
    assert len(json.loads((out / "mntp_report.json").read_text())["loss_history"]) == 4
    assert not ckpt.exists()


def test_adapt_stops_on_a_non_finite_loss_without_writing_a_model(tiny_model, tmp_path, monkeypatch, capsys):
    from splare_lucene.train import mntp

    real = mntp.mntp_loss
    monkeypatch.setattr(mntp, "mntp_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    assert cli(adapt_args(tiny_model, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "the MNTP loss is nan at step 1" in err and "no checkpoint was written" in err
    assert not (tmp_path / "run").exists()


def test_auto_temperature_is_chosen_once_and_reported(tiny_model, tmp_path):
    examples = load_examples(str(_write_examples(tmp_path / "ex.jsonl", with_scores=False)), 1, seed=0)
    cfg = TrainConfig(batch_size=4, max_steps=2, temperature=0.0, lora_rank=4, save_every=0)
    report = train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), examples, cfg, tmp_path / "o",
                   progress=False)
    assert report["temperature"] > 0 and report["loss"] == "infonce"


# -- recipes, temperature and precision ---------------------------------------------------------

def _train_args(*argv: str):
    import argparse

    from splare_lucene.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(["--data", "d.jsonl", "--output", "out", *argv])
    return recipe_config(args.recipe, **train_cli.config_overrides(args))


def test_paper_recipe_has_the_papers_values():
    cfg = recipe_config("paper")
    assert (cfg.loss, cfg.lora_rank, cfg.lora_alpha, cfg.lr, cfg.warmup_fraction) == ("kl", 64, 128, 5e-5, 0.01)
    assert (cfg.flops_query, cfg.flops_doc, cfg.negatives, cfg.epochs, cfg.max_steps) == (1e-4, 1e-4, 8, 1, 0)
    assert (cfg.query_max_length, cfg.doc_max_length) == (128, 128)
    assert (cfg.batch_size, cfg.grad_accum, cfg.effective_batch_size) == (8, 16, 128)
    assert cfg.temperature is None  # from the SAE family when training starts
    assert _train_args("--recipe", "paper") == cfg


def test_explicit_settings_override_the_recipe():
    cfg = _train_args("--recipe", "paper", "--batch-size", "4", "--lr", "1e-3", "--temperature", "20")
    assert (cfg.batch_size, cfg.grad_accum, cfg.lr, cfg.temperature, cfg.lora_rank) == (4, 32, 1e-3, 20.0, 64)
    assert _train_args("--recipe", "paper", "--grad-accum", "2").effective_batch_size == 16
    assert _train_args("--recipe", "paper", "--effective-batch-size", "32").grad_accum == 4
    assert _train_args("--batch-size", "4", "--effective-batch-size", "32").grad_accum == 8
    assert _train_args("--recipe", "paper", "--loss", "infonce", "--no-in-batch").in_batch_negatives is False
    with pytest.raises(ConfigError, match="not a multiple of the micro-batch 12"):
        _train_args("--recipe", "paper", "--batch-size", "12")
    with pytest.raises(ConfigError, match="give one of the last two"):
        _train_args("--batch-size", "4", "--grad-accum", "2", "--effective-batch-size", "32")
    with pytest.raises(ConfigError, match=r"recipe must be one of \['default', 'paper'\]; got 'papr'"):
        recipe_config("papr")


def test_default_recipe_keeps_the_old_defaults():
    cfg = _train_args()
    assert (cfg.loss, cfg.lora_rank, cfg.lora_alpha, cfg.batch_size, cfg.grad_accum, cfg.negatives) == \
        ("auto", 16, 32, 16, 1, 1)
    assert (cfg.query_max_length, cfg.doc_max_length, cfg.lr, cfg.flops_warmup_fraction) == (32, 128, 5e-5, 0.3)
    assert cfg.temperature is None  # no longer a silent 1.0


def test_makefile_train_recipe_resolves_to_the_shipped_default_config():
    """`make default-model` passes TRAIN_RECIPE to `train`: with recipes and None-defaulted flags
    it must still resolve to every setting the shipped default was trained with."""
    import re
    import shlex

    from conftest import REPO

    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    words = shlex.split(re.search(r"^TRAIN_RECIPE\s*=\s*(.+)$", text, re.M).group(1))
    for drop in ("--threads", "--max-queries"):  # not training settings
        i = words.index(drop)
        del words[i:i + 2]
    shipped = json.loads((REPO / "splare_lucene/assets/default/train_report.json").read_text())["config"]
    resolved = dataclasses.asdict(_train_args(*words))
    resolved["target_modules"] = list(resolved["target_modules"])
    defaults = dataclasses.asdict(TrainConfig())
    for key in set(resolved) - set(shipped):  # settings added after the default was trained: off
        assert resolved.pop(key) == defaults[key], key
    assert resolved == shipped


def test_family_temperature_follows_the_sae_source():
    from types import SimpleNamespace

    from splare_lucene.train.trainer import family_temperature

    def stub(source=None, representation="sae"):
        head = SimpleNamespace(config=SimpleNamespace(source=source))
        return SimpleNamespace(config=SimpleNamespace(representation=representation), head=head)

    assert family_temperature(stub("llamascope"))[0] == 80.0
    assert family_temperature(stub("gemmascope"))[0] == 50.0 and family_temperature(stub("gemmascope2"))[0] == 50.0
    assert family_temperature(stub(representation="vocab"))[0] == 10.0
    assert family_temperature(stub("saelens")) == (0.0, "auto: no paper temperature for 'saelens' SAEs")


def test_default_temperature_comes_from_the_sae_family(tiny_model, tmp_path):
    examples = load_examples(str(_write_examples(tmp_path / "ex.jsonl")), 1, seed=0)
    enc = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    enc.head.config = dataclasses.replace(enc.head.config, source="llamascope")  # as a Llama Scope SAE loads
    report = train(enc, examples, TrainConfig(batch_size=4, max_steps=1, lora_rank=4, save_every=0),
                   tmp_path / "o", progress=False, recipe="default")
    assert report["temperature"] == 80.0 and report["config"]["temperature"] == 80.0
    assert report["temperature_source"] == "paper: llamascope SAE" and report["recipe"] == "default"
    assert report["effective_batch_size"] == 4 and report["dtype"] == "float32"


def test_bf16_training_computes_scores_and_losses_in_float32(tiny_model, tmp_path, monkeypatch):
    examples = load_examples(str(_write_examples(tmp_path / "ex.jsonl")), 1, seed=0)
    enc = SplareEncoder.from_pretrained(tiny_model, device="cpu", dtype="bfloat16")
    assert enc.backbone.model.dtype == torch.bfloat16
    pooled = enc.pooled
    # on an accelerator a head may return vectors in the backbone's dtype (the vocabulary head does)
    monkeypatch.setattr(enc, "pooled", lambda *a, **k: pooled(*a, **k).to(torch.bfloat16))
    seen = []
    for name in ("candidate_scores", "kl_distillation", "flops"):
        def recorded(*args, _real=getattr(trainer_mod, name), _name=name, **kwargs):
            out = _real(*args, **kwargs)
            seen.append((_name, out.dtype))
            return out

        monkeypatch.setattr(trainer_mod, name, recorded)
    cfg = TrainConfig(batch_size=4, grad_accum=2, max_steps=1, lora_rank=4, temperature=10.0, save_every=0)
    report = train(enc, examples, cfg, tmp_path / "o", progress=False)
    assert {n for n, _ in seen} == {"candidate_scores", "kl_distillation", "flops"}
    assert all(dtype == torch.float32 for _, dtype in seen), seen
    assert report["dtype"] == "bfloat16" and report["effective_batch_size"] == 8
    # peft keeps the adapter in float32 on a bf16 backbone (docs/training.md says so)
    assert all(p.dtype == torch.float32 for n, p in enc.peft_model.named_parameters() if "lora_" in n)
    assert np.isfinite(report["history"][0]["loss"])


def test_sae_runs_in_float32_beside_a_bf16_backbone_off_cpu(tiny_model, monkeypatch):
    from splare_lucene import backbone as backbone_mod

    # "cpu:0" stands for an accelerator: any device name but "cpu" took the old backbone-dtype path
    monkeypatch.setattr(backbone_mod, "pick_device", lambda name: "cpu:0")
    enc = SplareEncoder.from_pretrained(tiny_model, dtype="bfloat16")
    assert enc.backbone.model.dtype == torch.bfloat16 and enc.head.W_enc.dtype == torch.float32
    assert enc.encode(["bees pollinate flowers"], "query")[0].nnz > 0


def test_dtype_auto_is_bf16_on_cuda_where_supported(monkeypatch):
    from splare_lucene.backbone import resolve_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", "cuda") == "bfloat16"
    assert resolve_dtype("auto", "cpu") == "float32" and resolve_dtype("auto", "mps") == "float32"
    assert resolve_dtype("float16", "cuda") == "float16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a T4 or V100
    assert resolve_dtype("auto", "cuda") == "float32"
    with pytest.raises(ConfigError, match=r"dtype must be one of \['auto', 'float32'"):
        resolve_dtype("fp8", "cuda")


# -- several processes (the 2-process runs themselves: tests/test_train_distributed.py) ------------

def test_effective_batch_counts_every_process():
    # the paper's 128 queries per step on 8 GPUs x 8 queries: 2 accumulated micro-batches
    assert recipe_config("paper", num_processes=8).grad_accum == 2
    assert recipe_config("paper", num_processes=2, batch_size=4).grad_accum == 16
    assert recipe_config("paper").grad_accum == 16  # one process: unchanged
    with pytest.raises(ConfigError, match=r"micro-batch 48 \(8 per process x 6 processes\)"):
        recipe_config("paper", num_processes=6)
    with pytest.raises(ConfigError, match=r"--batch-size 4 x 2 processes x --grad-accum 2"):
        recipe_config("default", num_processes=2, batch_size=4, grad_accum=2, effective_batch_size=32)


def test_process_slices_rebuild_the_one_process_batches():
    """Process r of N takes slice r of each global batch of N x b: in rank order the slices are the
    1-process batches of N x b, whatever N."""
    from splare_lucene.train.data import TrainExample
    from splare_lucene.train.trainer import _global_batches, _local_slice

    examples = [TrainExample(f"q{i}", (f"d{i}",)) for i in range(23)]
    one = list(_global_batches(examples, TrainConfig(batch_size=6, seed=3), 1, 1))
    for world in (2, 3):
        cfg = TrainConfig(batch_size=6 // world, seed=3)
        slices = [[_local_slice(g, cfg, r) for g in _global_batches(examples, cfg, 1, world)] for r in range(world)]
        assert all(len(s) == 6 // world for per_rank in slices for s in per_rank)
        rebuilt = [sum((slices[r][i] for r in range(world)), []) for i in range(len(one))]
        assert rebuilt == one and len(one) == 3


def test_mixed_precision_autocasts_the_backbone_but_not_the_sae_head(tiny_model, tmp_path, monkeypatch):
    from splare_lucene.train.trainer import make_accelerator

    examples = load_examples(str(_write_examples(tmp_path / "ex.jsonl")), 1, seed=0)
    enc = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    in_head, in_backbone = [], []
    real_pool = type(enc.head).pool

    def pool(self, h, *args, **kwargs):
        in_head.append(torch.is_autocast_enabled("cpu"))
        return real_pool(self, h, *args, **kwargs)

    monkeypatch.setattr(type(enc.head), "pool", pool)
    enc.backbone.model.register_forward_hook(lambda *_: in_backbone.append(torch.is_autocast_enabled("cpu")))
    report = train(enc, examples, TrainConfig(batch_size=4, max_steps=1, lora_rank=4, temperature=10.0,
                                              save_every=0),
                   tmp_path / "o", progress=False, accelerator=make_accelerator("cpu", "bf16"))
    assert report["mixed_precision"] == "bf16" and np.isfinite(report["history"][0]["loss"])
    assert in_backbone and all(in_backbone)  # accelerate's autocast around the backbone
    assert in_head == [False, False]  # queries and documents: the SAE in float32
    assert "pool" not in enc.head.__dict__  # the training-time wrapper is gone
    with pytest.raises(ConfigError, match=r"mixed_precision must be one of \['no', 'bf16', 'fp16'\]; got 'fp8'"):
        make_accelerator("cpu", "fp8")


def test_kl_without_teacher_scores_says_how_many_lack_them_and_the_fix():
    from splare_lucene.errors import ConfigError
    from splare_lucene.train.data import TrainExample
    from splare_lucene.train.trainer import TrainConfig, _pick_loss

    examples = [TrainExample("q1", ("p", "n"), (2.0, 1.0)), TrainExample("q2", ("p", "n"), None)]
    with pytest.raises(ConfigError, match=r"--recipe paper's loss.*1 of 2 examples have none.*--loss infonce"):
        _pick_loss(TrainConfig(loss="kl"), examples)
    assert _pick_loss(TrainConfig(loss="auto"), examples) == "infonce"


def test_a_loss_that_is_not_finite_stops_training_without_writing_the_model(tiny_model, tmp_path, monkeypatch,
                                                                            capsys):
    """A NaN loss (here from step 3 on) would apply NaN updates and leave a model whose vectors are
    all empty, written with exit status 0: training stops with one line instead, keeps the step-2
    checkpoint and writes no model."""
    real = trainer_mod.info_nce
    calls = []

    def nan_from_step_3(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 3 else loss

    monkeypatch.setattr(trainer_mod, "info_nce", nan_from_step_3)
    data = _write_examples(tmp_path / "ex.jsonl", n=16, with_scores=False)
    out = tmp_path / "o"
    assert cli(["train", "--model", str(tiny_model), "--data", str(data), "--output", str(out), "--loss",
                "infonce", "--temperature", "10", "--max-steps", "4", "--batch-size", "4", "--save-every", "2",
                "--lora-rank", "4", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "the infonce loss is nan at step 3" in err and "lower --lr" in err
    assert "o.checkpoint (step 2) is kept" in err
    assert not out.exists()
    assert torch.load(tmp_path / "o.checkpoint" / "trainer_state.pt", weights_only=True)["step"] == 2


def test_adapter_config_bytes_do_not_follow_the_string_hash_seed(tmp_path):
    """peft writes ``target_modules`` from a set: its order followed PYTHONHASHSEED, so the same
    training run saved different adapter_config.json bytes (another model fingerprint) from one
    process to the next. The saved list is sorted; a regex is kept as is."""
    import os
    import subprocess
    import sys

    from splare_lucene.encoder import _portable_adapter

    code = ("import json, sys; from pathlib import Path; from splare_lucene.encoder import _portable_adapter; "
            "d = Path(sys.argv[1]); d.mkdir(); "
            "(d / 'adapter_config.json').write_text(json.dumps({'target_modules': list({'q_proj', 'k_proj', "
            "'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}), 'base_model_name_or_path': '/tmp/x'})); "
            "_portable_adapter(d, 'pypi:gemma3-270m')")
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        folder = tmp_path / f"seed{seed}"
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed})
        outputs.add((folder / "adapter_config.json").read_bytes())
    assert len(outputs) == 1
    saved = json.loads(outputs.pop())
    assert saved["target_modules"] == sorted(saved["target_modules"])
    assert saved["base_model_name_or_path"] == "pypi:gemma3-270m"
    regex = tmp_path / "regex"
    regex.mkdir()
    (regex / "adapter_config.json").write_text(json.dumps({"target_modules": r"(.*\.)?layers\.(0|1)\..*"}))
    _portable_adapter(regex, "pypi:gemma3-270m")
    assert json.loads((regex / "adapter_config.json").read_text())["target_modules"] == r"(.*\.)?layers\.(0|1)\..*"
