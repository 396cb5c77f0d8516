"""train-sae on a tiny backbone: it learns (held-out FVU well below 1), keeps decoder rows at unit
norm, revives dead latents, converts to JumpReLU, and saves a loadable SAE atomically."""

from __future__ import annotations

import json

import pytest
import torch

from splare_lucene.backbone import load_backbone
from splare_lucene.cli.main import main as cli
from splare_lucene.corpus import read_documents
from splare_lucene.sae import load_sae
from splare_lucene.train.sae import SAETrainConfig, TopKTrainingSAE, _shuffled, train_topk_sae

from conftest import DEMO_DIR


def _texts(repeat=8):
    docs = [d.text for d in read_documents(str(DEMO_DIR))]
    return docs * repeat


def test_training_reduces_reconstruction_error(tiny_backbone):
    bb = load_backbone(str(tiny_backbone), 2)
    cfg = SAETrainConfig(d_sae=64, k=4, token_budget=12_000, batch_tokens=256, lr=3e-3,
                         heldout_tokens=512, token_shuffle_buffer=2048, dead_after_tokens=2000,
                         jumprelu=True, text_batch=8)
    sae, report = train_topk_sae(bb, 2, _texts(), cfg, progress=False)
    held = report["heldout"]
    assert held["topk"]["mean_l0"] == pytest.approx(4.0)
    assert held["topk"]["fvu"] < 0.6  # an untrained SAE (random tied init) is far above 1
    assert 0.0 <= held["topk"]["dead_share"] <= 1.0
    assert "jumprelu" in held and report["jumprelu_threshold"] >= 0
    assert sae.config.architecture == "jumprelu" and sae.config.layer == 2
    assert sae.config.apply_b_dec_to_input and sae.config.input_scale > 0
    norms = sae.W_dec.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=1e-4, atol=1e-4)


def test_decoder_gradient_has_no_component_along_rows():
    sae = TopKTrainingSAE(8, 16, 2, 1.0, torch.zeros(8))
    x = torch.randn(32, 8)
    _, _, recon = sae(x)
    ((recon - x) ** 2).sum().backward()
    sae.remove_parallel_grad()
    dots = (sae.W_dec.grad * sae.W_dec).sum(1)
    torch.testing.assert_close(dots, torch.zeros_like(dots), atol=1e-5, rtol=0)


def test_text_shuffle_buffer_is_a_permutation():
    import random

    items = [str(i) for i in range(100)]
    out = list(_shuffled(items, 10, random.Random(0)))
    assert sorted(out) == sorted(items) and out != items


def test_cli_train_sae_writes_loadable_sae_and_report(tiny_backbone, tmp_path):
    out = tmp_path / "sae"
    args = ["train-sae", "--backbone", str(tiny_backbone), "--layer", "1", "--corpus", str(DEMO_DIR),
            "--corpus", str(DEMO_DIR / "queries.jsonl"), "--output", str(out), "--d-sae", "32", "--k", "4",
            "--tokens", "2000", "--batch-tokens", "128", "--heldout-tokens", "128", "--device", "cpu"]
    assert cli(args) == 0
    sae = load_sae(out)
    assert sae.config.architecture == "topk" and sae.config.d_sae == 32 and sae.config.layer == 1
    report = json.loads((out / "train_report.json").read_text())
    assert report["layer"] == 1 and report["heldout"]["topk"]["tokens"] == 128
    assert cli(args) == 1  # exists: refused without --overwrite
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("sae.")]  # no temp dirs left
