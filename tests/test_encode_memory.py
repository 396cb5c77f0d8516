"""Resident memory of a long encode does not grow with the documents read (issue 9).

backbone.page_in: memory-mapped weights are resident after loading, not paged in per new token
(Linux only: reads /proc/self/smaps, like the machines the toolkit's CI runs on).
backbone.no_word_cache: the tokenizer's word cache is off, and tokenization is unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from splare_lucene.backbone import PAGE_BYTES, load_tokenizer, no_word_cache, page_in

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")


def _mapped_kib(path: Path) -> tuple[int, int]:
    """(Size, Rss) in KiB summed over this process's mappings of ``path``."""
    size = rss = 0
    current = None
    target = str(path.resolve())
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
                current = head[5] if len(head) >= 6 else None
            elif current == target and head[0] == "Size:":
                size += int(head[1])
            elif current == target and head[0] == "Rss:":
                rss += int(head[1])
    return size, rss


@linux_only
def test_page_in_makes_a_memory_mapped_weight_resident(tmp_path):
    # a file-backed weight, as transformers leaves safetensors weights on the CPU: 32,768 x 256
    # float32 (32 MiB), only its first rows read (as an embedding lookup of a few token ids
    # would). Large enough that the kernel's fault-around (up to a 2 MiB folio on recent kernels)
    # does not map it all on the first read.
    path = tmp_path / "weights.bin"
    rows, dim = 32768, 256
    path.write_bytes(torch.arange(rows * dim, dtype=torch.float32).numpy().tobytes())
    weight = torch.from_file(str(path), shared=True, size=rows * dim, dtype=torch.float32).view(rows, dim)
    module = torch.nn.Embedding.from_pretrained(weight, freeze=True)
    module(torch.tensor([0, 1, 2]))
    size, before = _mapped_kib(path)
    assert size == rows * dim * 4 // 1024
    assert before < size // 2  # only the pages read so far (plus the kernel's fault-around)
    spanned = page_in([module])
    assert spanned == rows * dim * 4
    _, after = _mapped_kib(path)
    assert after == size
    assert torch.equal(module.weight[rows - 1], weight[rows - 1])  # nothing was changed


def test_page_in_skips_tied_and_empty_tensors_and_reads_non_contiguous_ones():
    lin = torch.nn.Linear(64, 64, bias=False)
    tied = torch.nn.Module()
    tied.a = lin
    tied.b = torch.nn.Linear(64, 64, bias=False)
    tied.b.weight = lin.weight  # tied: counted once
    tied.register_buffer("empty", torch.empty(0))
    tied.register_buffer("strided", torch.zeros(32, 64).t())  # not contiguous
    assert page_in([tied]) == 64 * 64 * 4 + 32 * 64 * 4
    assert PAGE_BYTES == 4096


def _bpe_tokenizer(directory: Path):
    """A byte-level BPE fast tokenizer trained on the demo corpus, saved in transformers format."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    demo = Path(__file__).resolve().parents[1] / "splare_lucene" / "assets" / "demo" / "corpus.jsonl"
    texts = [json.loads(line)["text"] for line in demo.read_text(encoding="utf-8").splitlines()]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<pad>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")
    fast.save_pretrained(str(directory))
    return texts


def test_tokenizer_without_word_cache_tokenizes_the_same(tmp_path):
    from transformers import AutoTokenizer

    texts = _bpe_tokenizer(tmp_path)
    cached = AutoTokenizer.from_pretrained(str(tmp_path))  # tokenizers' default: a 10,000-word cache
    uncached = load_tokenizer(str(tmp_path))
    assert type(uncached.backend_tokenizer.model).__name__ == "BPE"
    for _ in range(2):  # the second pass is served from the cache of `cached`
        assert cached(texts)["input_ids"] == uncached(texts)["input_ids"]
    assert uncached(["zebra quagga xylophone"])["input_ids"] == cached(["zebra quagga xylophone"])["input_ids"]


def test_no_word_cache_leaves_tokenizers_without_one_unchanged(tmp_path):
    from conftest import make_tokenizer

    word_level = make_tokenizer(tmp_path)  # WordLevel: no cache to turn off
    assert no_word_cache(word_level) is word_level
    slow = type("Slow", (), {})()  # no backend_tokenizer (a slow tokenizer)
    assert no_word_cache(slow) is slow


_MMAP_PROBE = """
import ctypes, sys
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
try:
    libc.gnu_get_libc_version
    libc.mallinfo2.restype = Mallinfo2
except AttributeError:
    print("skip"); sys.exit(0)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    from splare_lucene.allocator import fix_mmap_threshold
    assert fix_mmap_threshold()
libc.free(libc.malloc(8 << 20))  # glibc's default: raises the threshold to 8 MiB
before = libc.mallinfo2().hblkhd
block = libc.malloc(2 << 20)
print(libc.mallinfo2().hblkhd - before)
libc.free(block)
"""


@linux_only
def test_fixed_mmap_threshold_keeps_large_blocks_out_of_the_heap():
    """glibc raises its mmap threshold to the size of a freed mmapped block (dynamic threshold),
    so a later 2 MiB block comes from the heap; with the threshold fixed it is mmapped (and
    returned to the OS when freed). Each case in a fresh interpreter: in a long-lived process a
    free heap chunk may serve the block whatever the threshold."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    mmapped = {}
    for mode in ("default", "fixed"):
        out = subprocess.run([sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True,
                             env=env, check=True).stdout.strip()
        if out == "skip":
            pytest.skip("needs glibc >= 2.33 (mallinfo2)")
        mmapped[mode] = int(out)
    assert mmapped["default"] < 2 << 20  # from the heap: the dynamic threshold was raised
    assert mmapped["fixed"] >= 2 << 20  # mmapped


def test_fixed_mmap_threshold_respects_the_users_setting_and_checks_its_value(monkeypatch):
    from splare_lucene import allocator

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert allocator.fix_mmap_threshold() is False
    with pytest.raises(ValueError, match="mmap threshold"):
        allocator.fix_mmap_threshold(0)


def test_the_fixes_are_wired_in(tmp_path, monkeypatch, tiny_model):
    """load_tokenizer turns the word cache off, load_backbone pages the weights in, and the local
    engine fixes the mmap threshold: each a spy on the call (the fixes themselves are tested above)."""
    from tokenizers import models

    import splare_lucene.allocator as allocator
    import splare_lucene.backbone as backbone
    from conftest import DEMO_DIR
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.local import encode_local

    # the private tokenizers call no_word_cache relies on: a tokenizers release without it fails here
    assert hasattr(models.BPE, "_resize_cache") and hasattr(models.Unigram, "_resize_cache")
    calls = {"no_word_cache": 0, "page_in": 0, "fix_mmap_threshold": 0, "release_free_memory": 0}

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(backbone, "no_word_cache", spy("no_word_cache", backbone.no_word_cache))
    monkeypatch.setattr(backbone, "page_in", spy("page_in", backbone.page_in))
    monkeypatch.setattr(allocator, "fix_mmap_threshold", spy("fix_mmap_threshold", allocator.fix_mmap_threshold))
    monkeypatch.setattr(allocator, "release_free_memory", spy("release_free_memory", allocator.release_free_memory))
    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    assert calls["no_word_cache"] >= 1 and calls["page_in"] >= 1
    summary = encode_local(encoder, str(DEMO_DIR / "corpus.jsonl"), tmp_path / "out", model_name="tiny",
                           progress=False, part_size=4)
    assert calls["fix_mmap_threshold"] == 1
    assert calls["release_free_memory"] == -(-summary.documents // 4)  # once per part


class _Records(list):
    """A list that can be weakly referenced (plain lists cannot)."""


def test_a_written_part_is_not_kept_while_the_next_encodes(tmp_path, monkeypatch, tiny_model):
    """The local engine drops each part's records once written: when part i+1 is being encoded,
    part i's records are gone (they held about 1 KB of Python objects per document, and kept
    resident memory one part higher than needed)."""
    import gc
    import weakref

    import splare_lucene.engines.local as local
    from conftest import DEMO_DIR
    from splare_lucene.encoder import SplareEncoder

    encode_part = local.encode_part
    previous: list = []
    alive_at_next_part: list[bool] = []

    def tracked(*args, **kwargs):
        gc.collect()
        alive_at_next_part.extend(ref() is not None for ref in previous[-1:])
        records = _Records(encode_part(*args, **kwargs))
        previous.append(weakref.ref(records))
        return records

    monkeypatch.setattr(local, "encode_part", tracked)
    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    local.encode_local(encoder, str(DEMO_DIR / "corpus.jsonl"), tmp_path / "out", model_name="tiny",
                       progress=False, part_size=4)
    assert len(alive_at_next_part) >= 2 and not any(alive_at_next_part)


def test_release_free_memory_runs_on_glibc():
    from splare_lucene.allocator import release_free_memory

    assert release_free_memory() is sys.platform.startswith("linux")
