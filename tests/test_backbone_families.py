"""Every supported backbone family, from a tiny random checkpoint saved by transformers in the
class and key layout of the family's hub checkpoints (``conftest.FAMILIES``): the cut at layer L
equals the uncut model's ``hidden_states[L + 1]``, bidirectional mode lets decoders' early tokens
see later ones, and ``assemble`` -> ``encode`` -> one ``train`` step -> ``adapt`` run.

The attention implementation is chosen per family (eager for Gemma 2's softcapping, SDPA
elsewhere), Gemma 3's multimodal layout loads only its text tower, and text that spells a
control token (``<bos>``, ``<|begin_of_text|>``, ``[CLS]``) is tokenized as text.

``SPLARE_TEST_DEVICE`` (default cpu) and ``SPLARE_TEST_DTYPE`` (default float32) run the same
tests on an accelerator, e.g. ``SPLARE_TEST_DEVICE=cuda SPLARE_TEST_DTYPE=bfloat16``
(benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import json
import logging
import math
import os

import pytest
import torch

from splare_lucene.backbone import LoadedBackbone, hidden_states, load_backbone, tokenize
from splare_lucene.cli.main import main as cli
from splare_lucene.errors import CheckpointError, ConfigError

from conftest import FAMILIES, make_backbone, make_sae_dir

DEVICE = os.environ.get("SPLARE_TEST_DEVICE", "cpu")
DTYPE = os.environ.get("SPLARE_TEST_DTYPE", "float32")
# Tolerances relative to the largest value compared (hidden states of tiny random models are
# ~0.05 for Llama-style and ~5 for Gemma's scaled embeddings): float32 reproduces to rounding;
# bfloat16 keeps 8 significant bits, and the two sides may reduce in a different order.
REL_TOL = 1e-5 if DTYPE == "float32" else 2e-2
LAYER = 2  # of 4 blocks: block 3 is never built
ENCODERS = {"bert-mlm", "xlmr"}
# family key in conftest.FAMILIES -> the attention implementation load_backbone must choose
CASES = {"llama3": "sdpa", "gemma2": "eager", "gemma3": "sdpa", "gemma3mm": "sdpa", "qwen2": "sdpa",
         "qwen3": "sdpa", "mistral": "sdpa", "bert-mlm": "sdpa", "xlmr": "sdpa"}
TEXTS = ["the moon drives the ocean tides", "bees pollinate flowers", "chess"]
# The control strings of every family's tokenizer (Gemma, Llama 3, BERT, XLM-R/Mistral, Qwen, the
# test tokenizer), spelled out in a document.
CONTROLS = ["<bos>", "<|begin_of_text|>", "[CLS]", "<s>", "</s>", "<|endoftext|>", "<|im_start|>", "[BOS]",
            "[SEP]", "<mask>"]
CONTROL_TEXT = "bees " + " pollinate ".join(CONTROLS) + " flowers"


@pytest.fixture(scope="module", params=sorted(CASES))
def family(request, tmp_path_factory):
    """(family key, checkpoint directory) with the family's own tokenizer style."""
    arch = request.param
    return arch, make_backbone(tmp_path_factory.mktemp(arch) / arch, arch)


def _assert_close(actual, expected):
    scale = float(expected.float().abs().max())
    torch.testing.assert_close(actual.float(), expected.float(), rtol=REL_TOL, atol=REL_TOL * scale)


def _differs(a, b) -> bool:
    """More than rounding apart (a changed input moves tiny models' states by ~20% of their scale)."""
    scale = float(torch.maximum(a.float().abs().max(), b.float().abs().max()))
    return float((a.float() - b.float()).abs().max()) > 5 * REL_TOL * scale


def _load(path, layer=LAYER, **kwargs) -> LoadedBackbone:
    return load_backbone(str(path), layer, dtype=DTYPE, device=DEVICE, **kwargs)


def _uncut(arch, path):
    """The whole checkpoint, loaded by transformers itself in the hub's class."""
    import transformers

    cls = getattr(transformers, FAMILIES[arch][0])
    return cls.from_pretrained(str(path), dtype=getattr(torch, DTYPE)).to(DEVICE).eval()


def test_cut_equals_uncut_hidden_states(family, caplog):
    arch, path = family
    with caplog.at_level(logging.INFO, logger="splare_lucene.backbone"):
        bb = _load(path)
    expected_attn = CASES[arch]
    assert bb.attn_implementation == expected_attn
    assert any(f"{expected_attn} attention" in r.getMessage() for r in caplog.records)  # said in the log
    blocks = bb.model.encoder.layer if bb.is_encoder else bb.model.layers
    assert len(blocks) == LAYER + 1 and bb.total_layers == 4  # blocks above L never built
    assert bb.is_encoder == (arch in ENCODERS)
    assert not any("vision" in name for name, _ in bb.model.named_modules())
    ids, attn, _ = tokenize(bb, TEXTS, 32, DEVICE)
    with torch.no_grad():
        cut = hidden_states(bb, ids, attn, bidirectional=False)
        full = _uncut(arch, path)(input_ids=ids, attention_mask=attn, output_hidden_states=True)
    assert cut.dtype == getattr(torch, DTYPE)
    valid = attn.bool()
    _assert_close(cut[valid], full.hidden_states[LAYER + 1][valid])


def test_bidirectional_changes_earlier_tokens_of_decoders(family):
    arch, path = family
    bb = _load(path)
    ids, attn, _ = tokenize(bb, ["bees pollinate flowers", "bees pollinate chess"], 16, DEVICE)
    assert attn.all()  # same length: no padding involved
    first_diff = int((ids[0] != ids[1]).nonzero()[0])
    assert first_diff > 0
    with torch.no_grad():
        causal = hidden_states(bb, ids, attn, bidirectional=False)
        bidir = hidden_states(bb, ids, attn, bidirectional=True)
    early_causal, early_bidir = causal[:, :first_diff], bidir[:, :first_diff]
    if arch in ENCODERS:  # already bidirectional: the flag changes nothing
        torch.testing.assert_close(bidir, causal)
        assert not torch.equal(early_causal[0], early_causal[1])  # post-LN encoders: a small change
    else:  # causal: tokens before the difference cannot see it, unless attention is bidirectional
        _assert_close(early_causal[0], early_causal[1])
        assert _differs(early_bidir[0], early_bidir[1])


def test_assemble_encode_train_adapt(family, tmp_path, capsys):
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.train.data import TrainExample
    from splare_lucene.train.trainer import TrainConfig, train

    arch, path = family
    sae = make_sae_dir(tmp_path / "sae", d_in=32, layer=LAYER)
    model = tmp_path / "model"
    assert cli(["assemble", "--backbone", str(path), "--sae", str(sae), "--output", str(model),
                "--doc-top-k", "16", "--query-top-k", "8"]) == 0
    docs = ["the moon drives the ocean tides", "bees pollinate flowers", CONTROL_TEXT]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs)))
    encoded = tmp_path / "encoded"
    assert cli(["encode", "--model", str(model), "--corpus", str(corpus), "--output", str(encoded),
                "--device", DEVICE, "--dtype", DTYPE]) == 0
    rows = [row for shard in sorted(encoded.glob("*.jsonl*")) for row in _read_shard(shard)]
    assert sorted(r["id"] for r in rows) == ["d0", "d1", "d2"] and all(r["vector"] for r in rows)

    encoder = SplareEncoder.from_pretrained(model, device=DEVICE, dtype=DTYPE)
    examples = [TrainExample(q, (docs[i], docs[(i + 1) % 3]), (5.0, 1.0))
                for i, q in enumerate(["moon tides", "bees flowers"])]
    # default LoRA targets: the decoder names, or query/key/value/dense for encoders
    cfg = TrainConfig(batch_size=2, max_steps=1, lora_rank=4, lr=1e-3, temperature=10.0,
                      query_max_length=16, doc_max_length=32, save_every=1000)
    report = train(encoder, examples, cfg, tmp_path / "trained", progress=False)
    assert report["steps"] == 1 and math.isfinite(report["history"][0]["loss"])
    assert (tmp_path / "trained" / "adapter" / "adapter_config.json").is_file()

    adapted = tmp_path / "adapted"
    args = ["adapt", "--model", str(model), "--corpus", str(corpus), "--output", str(adapted), "--steps", "1",
            "--batch-size", "2", "--lora-rank", "4", "--max-length", "16", "--device", DEVICE, "--dtype", DTYPE]
    capsys.readouterr()
    if arch in ENCODERS:
        assert cli(args) == 1 and not adapted.exists()
        assert "is a bidirectional encoder" in capsys.readouterr().err
    else:
        assert cli(args) == 0
        report = json.loads((adapted / "mntp_report.json").read_text())
        assert len(report["loss_history"]) == 1 and math.isfinite(report["loss_history"][0])
        reloaded = SplareEncoder.from_pretrained(adapted, device=DEVICE, dtype=DTYPE)
        assert reloaded.config.bidirectional and reloaded.encode(docs[:1])[0].nnz > 0


def _read_shard(path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- Gemma 3 multimodal layout (4B/12B/27B) ------------------------------------------------------


@pytest.fixture(scope="module")
def gemma3mm(tmp_path_factory):
    return make_backbone(tmp_path_factory.mktemp("gemma3mm") / "gemma3mm", "gemma3mm")


def test_multimodal_loads_both_key_layouts(gemma3mm, tmp_path):
    """The hub's layout (language_model.model.layers.*, a vision tower beside, as transformers'
    save_pretrained writes it) and model.language_model.layers.* (transformers 4.5x's) load the
    text tower to the same weights."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(gemma3mm / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "language_model.model.layers.0.self_attn.q_proj.weight" in keys
    assert any(k.startswith("vision_tower.") for k in keys)
    assert json.loads((gemma3mm / "config.json").read_text())["architectures"] == ["Gemma3ForConditionalGeneration"]
    other = tmp_path / "renamed"
    shutil.copytree(gemma3mm, other)
    state = load_file(str(other / "model.safetensors"))
    renamed = {("model.language_model." + k[len("language_model.model."):] if k.startswith("language_model.model.")
                else "model." + k): v for k, v in state.items()}
    save_file(renamed, str(other / "model.safetensors"))
    a, b = _load(gemma3mm), _load(other)
    ids, attn, _ = tokenize(a, TEXTS, 32, DEVICE)
    with torch.no_grad():
        torch.testing.assert_close(hidden_states(a, ids, attn, False), hidden_states(b, ids, attn, False),
                                   rtol=0, atol=0)


def test_multimodal_missing_text_weight_is_an_error(gemma3mm, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(gemma3mm, broken)
    state = load_file(str(broken / "model.safetensors"))
    state.pop("language_model.model.layers.1.mlp.up_proj.weight")
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layers\.1\.mlp\.up_proj\.weight"):
        _load(broken)
    _load(broken, layer=0)  # a cut below the missing block does not need it


def test_multimodal_vocabulary_head_matches_the_full_models_logits(gemma3mm):
    """with_lm_head on the multimodal layout: the text tower's final norm and (tied) LM head."""
    bb = _load(gemma3mm, layer=3, with_lm_head=True)
    assert bb.lm_head is not None and not any("vision" in n for n, _ in bb.model.named_modules())
    ids, attn, _ = tokenize(bb, TEXTS[:1], 32, DEVICE)
    with torch.no_grad():
        logits = bb.lm_head(bb.final_norm(hidden_states(bb, ids, attn, False)))
        expected = _uncut("gemma3mm", gemma3mm)(input_ids=ids, attention_mask=attn).logits
    _assert_close(logits, expected)


# --- Special-token text ----------------------------------------------------------------------------


def test_control_token_text_is_tokenized_as_text(family):
    """A document spelling control tokens (``<bos>``, ``<|begin_of_text|>``, ``[CLS]``, ...) gets no
    control token mid-sequence; the BOS/CLS the tokenizer adds itself is still added and still
    left out of pooling."""
    arch, path = family
    bb = _load(path, layer=0)
    tok = bb.tokenizer
    assert set(CONTROLS) & set(tok.all_special_tokens)  # the family's tokenizer defines some as special
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    plain_ids, _, _ = tokenize(bb, ["bees"], 8, DEVICE)
    added = [int(t) for t in plain_ids[0] if int(t) in special]  # what the template adds (BOS, CLS/SEP)
    ids, attn, pool = tokenize(bb, [CONTROL_TEXT, "bees"], 64, DEVICE)
    row = [int(t) for t in ids[0, : int(attn[0].sum())]]
    assert [t for t in row if t in special] == added  # no control token from the text
    if added:
        assert row[0] == added[0] and not pool[0, 0]
    assert int(pool[0].sum()) == len(row) - len(added)  # every text token is pooled, no added one


# --- Heads: MNTP's LM head per family, and encoders' refusal ---------------------------------------


def test_mntp_loss_predicts_with_the_models_own_logits(tmp_path):
    """Gemma 2 softcaps its logits (cap * tanh(logits / cap), final_logit_softcapping): MNTP's loss
    is the cross-entropy of the full CausalLM's logits at the masked positions."""
    import transformers

    from splare_lucene.backbone import bidirectional_mask
    from splare_lucene.train.mntp import mask_token_id, mntp_loss

    path = make_backbone(tmp_path / "gemma2", "gemma2")
    # Gemma 2's cap is 30; tiny random logits are ~0.1, so cap them at 0.05 for the cap to matter.
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "final_logit_softcapping": 0.05}))
    bb = _load(path, layer=3, with_lm_head=True)
    assert bb.logit_softcap == 0.05
    ids, attn, maskable = tokenize(bb, ["bees pollinate flowers and crops"], 16, DEVICE)
    mask_id = mask_token_id(bb.tokenizer)
    with torch.no_grad():
        loss = mntp_loss(bb, ids, attn, maskable, mask_id, 1.0, torch.Generator().manual_seed(0))
        chosen = maskable & (torch.arange(ids.shape[1], device=ids.device) > 0)  # ratio 1: all but position 0
        full = transformers.Gemma2ForCausalLM.from_pretrained(str(path), dtype=getattr(torch, DTYPE)).to(DEVICE)
        logits = full(input_ids=ids.masked_fill(chosen, mask_id),
                      attention_mask=bidirectional_mask(attn, full.dtype)).logits[0, :-1]
        expected = torch.nn.functional.cross_entropy(logits[chosen[0, 1:]].float(), ids[0, 1:][chosen[0, 1:]])
    assert loss.item() == pytest.approx(expected.item(), rel=REL_TOL * 10)


def test_encoders_have_no_plain_lm_head(tmp_path):
    """BERT's masked-LM head (dense + norm + decoder) is not an LM head: the vocabulary
    representation refuses it instead of silently skipping its transform."""
    path = make_backbone(tmp_path / "bert", "bert-mlm", layers=2)
    with pytest.raises(ConfigError, match="bidirectional encoder"):
        _load(path, layer=1, with_lm_head=True)
