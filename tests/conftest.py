"""Shared fixtures: tiny randomly initialised backbones built from configs (no download), a tiny
SAE, and tiny SPLARE model directories built from them."""

from __future__ import annotations

import contextlib
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


# Tokenizer layouts of the backbone families: (special tokens in id order, the template that adds
# them, and the roles). Each family's own control strings are *special* tokens, as on the hub, so a
# document that contains them literally tests that they are tokenized as text.
TOKENIZER_STYLES: dict[str, dict] = {
    "word": dict(specials=["[PAD]", "[UNK]", "[BOS]", "[EOS]"], template="[BOS] $A",
                 roles=dict(pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]")),
    "gemma": dict(specials=["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"], template="<bos> $A",
                  roles=dict(pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
                             mask_token="<mask>")),
    "llama3": dict(specials=["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>"],
                   template="<|begin_of_text|> $A",
                   roles=dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                              unk_token="<|reserved_special_token_0|>")),  # no pad token, as on the hub
    "qwen": dict(specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], template="$A",  # no BOS
                 roles=dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|im_start|>")),
    "mistral": dict(specials=["<unk>", "<s>", "</s>"], template="<s> $A",
                    roles=dict(unk_token="<unk>", bos_token="<s>", eos_token="</s>")),
    "bert": dict(specials=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], template="[CLS] $A [SEP]",
                 roles=dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                            mask_token="[MASK]")),
    "xlmr": dict(specials=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], template="<s> $A </s>",
                 roles=dict(bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                            cls_token="<s>", sep_token="</s>", mask_token="<mask>")),
}


def make_tokenizer(directory: Path, style: str = "word"):
    """A word-level fast tokenizer over the demo corpus's words, saved in transformers format.

    ``style`` picks a family's special tokens and template (``TOKENIZER_STYLES``): "word" (the
    original test tokenizer, [BOS] prepended), "gemma", "llama3", "qwen", "mistral", "bert", "xlmr".
    """
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    spec = TOKENIZER_STYLES[style]
    vocab = {tok: i for i, tok in enumerate(spec["specials"])}
    for w in _words():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=spec["roles"]["unk_token"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    template_specials = [t for t in spec["template"].split() if t in vocab]
    tok.post_processor = processors.TemplateProcessing(
        single=spec["template"], pair=spec["template"] + " $B",
        special_tokens=[(t, vocab[t]) for t in dict.fromkeys(template_specials)])
    # As in hub tokenizers: the control strings are added tokens, matched in raw text (unnormalized).
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec["specials"]])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **spec["roles"])
    fast.save_pretrained(str(directory))
    return fast


# Family -> (transformers class saved, as the hub checkpoints are, and its default tokenizer style).
FAMILIES = {
    "llama": ("LlamaForCausalLM", "word"), "llama3": ("LlamaForCausalLM", "llama3"),
    "qwen2": ("Qwen2ForCausalLM", "word"), "qwen3": ("Qwen3ForCausalLM", "qwen"),
    "mistral": ("MistralForCausalLM", "mistral"), "gemma2": ("Gemma2ForCausalLM", "gemma"),
    "gemma3": ("Gemma3ForCausalLM", "word"), "gemma3mm": ("Gemma3ForConditionalGeneration", "gemma"),
    "bert": ("BertModel", "word"), "bert-mlm": ("BertForMaskedLM", "bert"),
    "xlmr": ("XLMRobertaForMaskedLM", "xlmr"),
}


def make_backbone(directory: Path, arch: str = "llama", layers: int = 4, hidden: int = 32, seed: int = 0,
                  tokenizer: str | None = None) -> Path:
    """Save a tiny random transformers model of family ``arch`` (a key of ``FAMILIES``) with a
    tokenizer (``tokenizer``: a ``TOKENIZER_STYLES`` key; default: the family's), in the class and
    key layout the family's hub checkpoints have (``save_pretrained``)."""
    import torch
    import transformers as tf

    if arch not in FAMILIES:
        raise ValueError(f"arch must be one of {sorted(FAMILIES)}; got {arch!r}")
    cls_name, default_style = FAMILIES[arch]
    directory.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(directory, tokenizer or default_style)
    ids = dict(pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    common = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=4, **ids)
    alternating = ["sliding_attention", "full_attention"] * (layers // 2) + ["sliding_attention"] * (layers % 2)
    if arch in ("llama", "llama3"):
        extra = {}
        if arch == "llama3":  # Llama 3.1's rope scaling
            extra = dict(rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                              low_freq_factor=1.0, high_freq_factor=4.0,
                                              original_max_position_embeddings=128))
        config = tf.LlamaConfig(num_key_value_heads=2, max_position_embeddings=256, **extra, **common)
    elif arch == "qwen2":
        config = tf.Qwen2Config(num_key_value_heads=2, max_position_embeddings=256, **common)
    elif arch == "qwen3":
        config = tf.Qwen3Config(num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                                tie_word_embeddings=True, **common)
    elif arch == "mistral":
        config = tf.MistralConfig(num_key_value_heads=2, head_dim=8, max_position_embeddings=256, **common)
    elif arch == "gemma2":  # attn_logit_softcapping=50 and final_logit_softcapping=30 by default
        config = tf.Gemma2Config(num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                                 sliding_window=4, query_pre_attn_scalar=8, layer_types=alternating, **common)
    elif arch == "gemma3":
        config = tf.Gemma3TextConfig(num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                                     sliding_window=4, **common)
    elif arch == "gemma3mm":  # the 4b/12b/27b layout: text tower + SigLIP vision tower + projector
        text = tf.Gemma3TextConfig(num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                                   sliding_window=4, layer_types=alternating, **common)
        vision = tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14)
        config = tf.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    elif arch in ("bert", "bert-mlm"):
        config = tf.BertConfig(max_position_embeddings=256, **common)
    elif arch == "xlmr":  # positions start after the padding index, as in XLM-R's 514 positions
        config = tf.XLMRobertaConfig(max_position_embeddings=256 + ids["pad_token_id"] + 1, **common)
    torch.manual_seed(seed)
    model = getattr(tf, cls_name)(config)
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
                       apply_b_dec_to_input=True, input_scale=0.5, layer=layer,
                       hook_site="resid_post")
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


@pytest.fixture(scope="session")
def tiny_demo_index(tiny_model, tmp_path_factory) -> Path:
    """A Lucene impact index of the demo corpus built with ``tiny_model`` by the ``index`` command
    (read-only: tests that change an index build their own)."""
    from splare_lucene.cli.main import main as cli

    root = tmp_path_factory.mktemp("demo-index")
    assert cli(["index", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--index", str(root / "index"),
                "--device", "cpu"]) == 0
    return root / "index"


@contextlib.contextmanager
def crash_after_checkpoint(monkeypatch):
    """``with crash_after_checkpoint(monkeypatch): train(...)``: the trainer raises
    KeyboardInterrupt right after it writes its first checkpoint (a run killed there; the block
    expects it), and its real ``_save_checkpoint`` is back after the block."""
    from splare_lucene.train import trainer

    real_save = trainer._save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_checkpoint", save_then_crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(trainer, "_save_checkpoint", real_save)


def crashed_training_checkpoint(tiny_model, examples, cfg, out: Path, monkeypatch) -> Path:
    """Train ``tiny_model`` on ``examples`` with ``cfg`` into ``out``, killed right after its first
    checkpoint (``crash_after_checkpoint``); returns the checkpoint's ``trainer_state.pt``."""
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.train.trainer import train

    with crash_after_checkpoint(monkeypatch):
        train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), examples, cfg, out, progress=False)
    return out.with_name(out.name + ".checkpoint") / "trainer_state.pt"


def adapt_args(model, out, *extra) -> list[str]:
    """`adapt` CLI arguments: 4 steps on the demo corpus, a checkpoint every 2."""
    return ["adapt", "--model", str(model), "--corpus", str(DEMO_DIR), "--output", str(out), "--steps", "4",
            "--lr", "1e-2", "--lora-rank", "4", "--batch-size", "4", "--device", "cpu", "--save-every", "2", *extra]


def interrupt_adapt_at_step_3(model, out, monkeypatch) -> None:
    """Run `adapt` (4 steps, a checkpoint every 2) and press Ctrl-C during step 3."""
    from splare_lucene.cli.main import main as cli
    from splare_lucene.train import mntp

    real, calls = mntp.mntp_loss, []

    def stop_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(mntp, "mntp_loss", stop_at_step_3)
        assert cli(adapt_args(model, out)) == 130  # interrupted


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requires_shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (set SPLARE_SHARED_DATA to the shared data folder)")
    return path


def pytest_collection_modifyitems(session, config, items):
    """Run the Ray engine's tests last.

    Observed twice in full runs: once ``ray.init`` had run in the pytest process, the Anserini
    tests that came after it (in-process JVM via pyjnius: indexing and search in test_evaluate)
    killed the process with SIGSEGV. The likely cause (not proven): Ray's core worker installs
    fatal-signal handlers in its driver process, and the JVM relies on handling SIGSEGV itself
    (safepoints, implicit null checks). Either suite alone passes, and a CLI process never holds both (``encode --engine
    ray`` starts no JVM), so the tests keep them apart by order.
    """
    ray_tests = [item for item in items if item.path.name == "test_engine_ray.py"]
    if ray_tests:
        items[:] = [item for item in items if item.path.name != "test_engine_ray.py"] + ray_tests
