"""Shared fixtures: tiny randomly initialised backbones built from configs (no download), a tiny
SAE, and tiny SPLARE model directories built from them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEMO_DIR = REPO / "splare_lucene" / "assets" / "demo"


def _words() -> list[str]:
    text = (DEMO_DIR / "corpus.jsonl").read_text() + (DEMO_DIR / "queries.jsonl").read_text()
    return sorted(set(re.findall(r"\w+", text.lower())))


def make_tokenizer(directory: Path):
    """A word-level fast tokenizer with [BOS] prepended, saved in transformers format."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    for w in _words():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", pair="[BOS] $A $B", special_tokens=[("[BOS]", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]", unk_token="[UNK]")
    fast.save_pretrained(str(directory))
    return fast


def make_backbone(directory: Path, arch: str = "llama", layers: int = 4, hidden: int = 32, seed: int = 0) -> Path:
    """Save a tiny random transformers model of family ``arch`` with a tokenizer."""
    import torch
    import transformers as tf

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(directory)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=4, pad_token_id=0,
                  bos_token_id=2, eos_token_id=3)
    if arch == "llama":
        config = tf.LlamaConfig(num_key_value_heads=2, max_position_embeddings=256, **common)
        cls = tf.LlamaForCausalLM
    elif arch == "qwen2":
        config = tf.Qwen2Config(num_key_value_heads=2, max_position_embeddings=256, **common)
        cls = tf.Qwen2ForCausalLM
    elif arch == "gemma3":
        config = tf.Gemma3TextConfig(num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                                     sliding_window=4, **common)
        cls = tf.Gemma3ForCausalLM
    elif arch == "bert":
        config = tf.BertConfig(max_position_embeddings=256, **common)
        cls = tf.BertModel
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(str(directory))
    return directory


def make_sae_dir(directory: Path, d_in: int, d_sae: int = 64, k: int = 8, layer: int = 2, seed: int = 0,
                 architecture: str = "topk") -> Path:
    import torch

    from splare_lucene.sae import build_sae
    from splare_lucene.sae.config import SAEConfig
    from splare_lucene.sae.formats import save_native

    g = torch.Generator().manual_seed(seed)
    config = SAEConfig(architecture, d_in, d_sae, k=k if architecture == "topk" else None,
                       apply_b_dec_to_input=True, input_scale=0.5, layer=layer)
    tensors = {"W_enc": torch.randn(d_in, d_sae, generator=g), "b_enc": torch.randn(d_sae, generator=g) * 0.1,
               "b_dec": torch.randn(d_in, generator=g) * 0.1, "W_dec": torch.randn(d_sae, d_in, generator=g)}
    if architecture == "jumprelu":
        tensors["threshold"] = torch.rand(d_sae, generator=g)
    save_native(build_sae(config, tensors), directory)
    return directory


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return make_backbone(tmp_path_factory.mktemp("backbone") / "llama")


@pytest.fixture(scope="session")
def tiny_sae(tmp_path_factory) -> Path:
    return make_sae_dir(tmp_path_factory.mktemp("sae") / "sae", d_in=32)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_backbone, tiny_sae) -> Path:
    """A tiny SPLARE model directory (llama backbone cut at layer 2, 64-latent TopK SAE)."""
    from splare_lucene.config import TextSide
    from splare_lucene.encoder import SplareEncoder

    enc = SplareEncoder.from_components(str(tiny_backbone), tiny_sae, device="cpu",
                                        query=TextSide(32, 10), document=TextSide(64, 20),
                                        quantization_scale=100.0)
    return enc.save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def requires_shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (set SPLARE_SHARED_DATA to the shared data folder)")
    return path
