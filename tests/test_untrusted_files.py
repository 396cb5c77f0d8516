"""Untrusted files: loading a model, an SAE or a training checkpoint never runs code from a file.

Each test plants a malicious pickle (an object whose ``__reduce__`` calls ``os.system`` to create
a marker file) where a loader could read it, checks that the load is refused with a
CheckpointError (or that the pickle is ignored in favour of safetensors) and that the marker never
appears, and then unpickles the planted file the unsafe way to show that it would have run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from splare_lucene.errors import CheckpointError

from conftest import DEMO_DIR, adapt_args, interrupt_adapt_at_step_3, read_jsonl


class _Plant:
    """Unpickling this runs ``touch <marker>`` (what an attacker's file would do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def _prove_it_runs(path: Path, marker: Path) -> None:
    """The planted file does run code when unpickled without weights_only (so a refusal above
    is what kept the marker away, not a broken plant)."""
    assert not marker.exists()
    try:
        torch.load(path, weights_only=False)
    except Exception:  # the payload ran while unpickling; what it returned may not fit torch
        pass
    assert marker.exists(), "the planted pickle did not run: the test proves nothing"


def _examples(path: Path, n: int = 8) -> Path:
    docs = [d["title"] + " " + d["text"] for d in read_jsonl(DEMO_DIR / "corpus.jsonl")]
    queries = [q["text"] for q in read_jsonl(DEMO_DIR / "queries.jsonl")]
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"query": queries[i % len(queries)], "positive": docs[i],
                                "negatives": [docs[i + 1]], "scores": [5.0, 1.0]}) + "\n")
    return path


def test_planted_trainer_state_is_refused_on_resume(tiny_model, tmp_path, monkeypatch):
    """A training checkpoint whose trainer_state.pt carries a payload: resuming raises
    CheckpointError naming the file and how to restart; the payload never runs."""
    from splare_lucene.encoder import SplareEncoder
    from conftest import crashed_training_checkpoint
    from splare_lucene.train.data import load_examples
    from splare_lucene.train.trainer import TrainConfig, train

    examples = load_examples(str(_examples(tmp_path / "ex.jsonl")), 1, seed=0)
    cfg = TrainConfig(batch_size=4, max_steps=2, save_every=1, lr=1e-2, lora_rank=4, temperature=10.0)
    out = tmp_path / "run"
    state_file = crashed_training_checkpoint(tiny_model, examples, cfg, out, monkeypatch)
    # the toolkit's own checkpoint is plain data: it loads with the weights-only unpickler
    saved = torch.load(state_file, weights_only=True)
    marker = tmp_path / "pwned"
    torch.save({**saved, "note": _Plant(marker)}, state_file)  # tampered: same state plus a payload

    with pytest.raises(CheckpointError, match=r"trainer_state\.pt.*not loaded.*run code.*restart") as err:
        train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), examples, cfg, out, progress=False)
    assert "system" in str(err.value)  # names what it refused
    assert not marker.exists() and not out.exists()
    _prove_it_runs(state_file, marker)


def test_planted_adaptation_state_is_refused_on_resume(tiny_model, tmp_path, monkeypatch, capsys):
    """`adapt`'s checkpoint (mntp_state.pt) with a payload: the resume fails with exit 1 and a message
    naming the file and how to restart; the payload never runs and the checkpoint is kept."""
    from splare_lucene.cli.main import main as cli

    out, ckpt = tmp_path / "run", tmp_path / "run.checkpoint"
    interrupt_adapt_at_step_3(tiny_model, out, monkeypatch)
    state_file = ckpt / "mntp_state.pt"
    marker = tmp_path / "pwned"
    torch.save({**torch.load(state_file, weights_only=True), "note": _Plant(marker)}, state_file)
    capsys.readouterr()
    assert cli(adapt_args(tiny_model, out)) == 1
    err = capsys.readouterr().err
    assert "mntp_state.pt was not loaded" in err and "system" in err and "--no-resume" in err
    assert not marker.exists() and not out.exists() and state_file.is_file()
    _prove_it_runs(state_file, marker)


def _pickle_only_backbone(tiny_backbone: Path, target: Path, marker: Path, keep_safetensors: bool) -> Path:
    """A copy of the tiny backbone whose weights are (also) a pytorch_model.bin with a payload."""
    shutil.copytree(tiny_backbone, target)
    from safetensors.torch import load_file

    state = load_file(str(target / "model.safetensors"))
    torch.save({**state, "payload": _Plant(marker)}, target / "pytorch_model.bin")
    if not keep_safetensors:
        (target / "model.safetensors").unlink()
    return target


def test_planted_pytorch_model_bin_is_refused_or_ignored(tiny_backbone, tmp_path):
    """A backbone directory whose only weights are a pickle with a payload is refused with a
    CheckpointError that says how to convert; beside a model.safetensors the pickle is ignored."""
    from splare_lucene.backbone import load_backbone

    marker = tmp_path / "pwned"
    only_bin = _pickle_only_backbone(tiny_backbone, tmp_path / "bin-only", marker, keep_safetensors=False)
    with pytest.raises(CheckpointError, match=r"bin-only: its weights file is a pickle.*not loaded.*safetensors"):
        load_backbone(str(only_bin), 1)
    assert not marker.exists()

    both = _pickle_only_backbone(tiny_backbone, tmp_path / "both", marker, keep_safetensors=True)
    loaded = load_backbone(str(both), 1)
    assert loaded.hidden_size == 32 and not marker.exists()
    _prove_it_runs(only_bin / "pytorch_model.bin", marker)


def test_backbone_that_needs_remote_code_is_refused_without_asking(tiny_backbone, tmp_path):
    """A config.json that names custom code (auto_map): transformers would ask on stdin whether to
    run it; the toolkit refuses without asking, says it never runs repository code, and the
    module is never imported."""
    from splare_lucene.backbone import load_backbone

    target = tmp_path / "custom"
    shutil.copytree(tiny_backbone, target)
    marker = tmp_path / "pwned"
    (target / "evil_config.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "from transformers import PretrainedConfig\n\n\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'splare-evil'\n")
    config = json.loads((target / "config.json").read_text())
    config.update(model_type="splare-evil", auto_map={"AutoConfig": "evil_config.EvilConfig"})
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"custom code.*never runs code.*trust_remote_code"):
        load_backbone(str(target), 1)
    assert not marker.exists()


def test_planted_adapter_model_bin_is_refused(tiny_model, tmp_path):
    """A model directory whose LoRA adapter is an adapter_model.bin with a payload: loading the
    model raises CheckpointError; the payload never runs."""
    from peft import LoraConfig

    from splare_lucene.encoder import SplareEncoder

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    config = json.loads((model_dir / "splare_config.json").read_text())
    config["adapter"] = "adapter"
    (model_dir / "splare_config.json").write_text(json.dumps(config))
    LoraConfig(r=2, target_modules=["q_proj"]).save_pretrained(str(model_dir / "adapter"))
    marker = tmp_path / "pwned"
    torch.save({"payload": _Plant(marker)}, model_dir / "adapter" / "adapter_model.bin")

    with pytest.raises(CheckpointError, match=r"adapter_model\.bin is a pickle.*not loaded.*safetensors"):
        SplareEncoder.from_pretrained(model_dir, device="cpu")
    assert not marker.exists()
    _prove_it_runs(model_dir / "adapter" / "adapter_model.bin", marker)


def test_pickled_sae_files_are_refused(tmp_path):
    """SAE weights given as a pickle (.pt beside a SAELens cfg.json) are refused with the command
    that converts them; a Gemma Scope params.npz holding a pickled object array is refused too
    (npz is read with allow_pickle=False). Neither payload runs."""
    from splare_lucene.sae import load_sae

    marker = tmp_path / "pwned"
    saelens = tmp_path / "saelens"
    saelens.mkdir()
    (saelens / "cfg.json").write_text(json.dumps({"d_in": 4, "d_sae": 8, "hook_name": "blocks.1.hook_resid_post"}))
    torch.save({"W_enc": _Plant(marker)}, saelens / "sae_weights.pt")
    with pytest.raises(CheckpointError, match=r"sae_weights\.pt.*does not load.*unpickling.*safetensors"):
        load_sae(saelens)
    with pytest.raises(CheckpointError, match=r"pickle files"):
        load_sae(saelens / "sae_weights.pt")
    assert not marker.exists()

    npz = tmp_path / "gemma-scope-2b-pt-res" / "layer_1" / "width_16k" / "average_l0_50" / "params.npz"
    npz.parent.mkdir(parents=True)
    np.savez(npz, W_enc=np.array([_Plant(marker)], dtype=object))
    with pytest.raises(CheckpointError, match=r"params\.npz.*pickle"):
        load_sae(npz.parent)
    assert not marker.exists()
    _prove_it_runs(saelens / "sae_weights.pt", marker)
