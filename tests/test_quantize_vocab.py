"""quantize.py (float weights -> integer impacts) and vocab.py (latent id <-> pseudo-token)."""

from __future__ import annotations

import numpy as np
import pytest

from splare_lucene.errors import ConfigError
from splare_lucene.quantize import dequantize, quantize
from splare_lucene.types import ImpactVector, SparseVector
from splare_lucene.vocab import LatentVocab


def sv(indices, values, dtype=np.float64) -> SparseVector:
    return SparseVector(np.asarray(indices, dtype=np.int64), np.asarray(values, dtype=dtype))


# -- quantize -----------------------------------------------------------------------------------


def test_rounding_at_scale_100():
    out = quantize(sv([10, 11, 12, 13], [0.004, 0.005, 1.234, 2.0]), 100)
    assert isinstance(out, ImpactVector)
    assert out.indices.tolist() == [11, 12, 13]  # 0.004 * 100 = 0.4 rounds to 0: dropped
    assert out.weights.tolist() == [1, 123, 200]  # 0.005 * 100 = 0.5 rounds up to 1


def test_round_half_up_not_to_even():
    # exactly representable halves: banker's rounding would give 0, 2, 2, 4
    out = quantize(sv([0, 1, 2, 3], [0.25, 0.75, 1.25, 1.75]), 2)
    assert out.weights.tolist() == [1, 2, 3, 4]


def test_zeros_are_dropped_with_their_indices():
    out = quantize(sv([5, 6, 7, 8, 9], [0.0, 3.0, 0.001, 0.0, 0.5]), 10)
    assert out.indices.tolist() == [6, 9]
    assert out.weights.tolist() == [30, 5]
    assert out.nnz == 2


def test_all_below_half_gives_empty_vector():
    out = quantize(sv([1, 2], [0.001, 0.0049]), 100)
    assert out.nnz == 0
    assert out.indices.shape == (0,) and out.weights.shape == (0,)


def test_weights_are_positive_ints():
    rng = np.random.default_rng(0)
    values = rng.exponential(0.5, size=500).astype(np.float32)
    out = quantize(sv(np.arange(500), values, dtype=np.float32), 100)
    assert out.weights.dtype == np.int64
    assert out.indices.dtype == np.int64
    assert (out.weights > 0).all()
    kept = np.isin(np.arange(500), out.indices)
    # every kept impact is within half a step of its weight; every dropped weight is below half
    assert np.abs(out.weights / 100 - values[kept]).max() <= 0.005 + 1e-7
    assert (values[~kept] < 0.005 + 1e-7).all()
    assert (values[kept] >= 0.005 - 1e-7).all()


def test_quantize_accepts_lists():
    out = quantize(SparseVector([3, 4], [0.5, 0.01]), 10)
    assert out.indices.tolist() == [3] and out.weights.tolist() == [5]


@pytest.mark.parametrize("scale", [0, -1, -0.5, float("nan")])
def test_invalid_scale(scale):
    with pytest.raises(ConfigError, match="scale must be > 0"):
        quantize(sv([1], [1.0]), scale)


@pytest.mark.parametrize("scale", [1, 10, 100, 1000])
def test_dequantize_is_an_approximate_inverse(scale):
    rng = np.random.default_rng(scale)
    values = rng.uniform(1.0, 5.0, size=50)  # large enough that nothing rounds to 0
    original = sv(np.arange(50), values)
    back = dequantize(quantize(original, scale), scale)
    assert back.indices.tolist() == original.indices.tolist()
    assert back.values.dtype == np.float32
    assert np.abs(back.values - values).max() <= 0.5 / scale + 1e-6


def test_quantize_dequantize_quantize_is_stable():
    q = quantize(sv([1, 2, 3], [0.123, 4.567, 0.899]), 100)
    again = quantize(dequantize(q, 100), 100)
    assert again.indices.tolist() == q.indices.tolist()
    assert again.weights.tolist() == q.weights.tolist()


# -- vocab --------------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [0, 7, 10, 131071])
def test_token_latent_round_trip(latent):
    vocab = LatentVocab()
    token = vocab.token(latent)
    assert token == f"f{latent}"
    assert vocab.latent(token) == latent


def test_numpy_ints_make_plain_tokens():
    vocab = LatentVocab()
    assert vocab.token(np.int64(42)) == "f42"
    assert vocab.token(np.int32(0)) == "f0"


@pytest.mark.parametrize("prefix", ["f", "lat", "abcd", "z"])
def test_tokens_are_ascii_without_whitespace(prefix):
    vocab = LatentVocab(prefix)
    for latent in (0, 1, 99, 131071):
        token = vocab.token(latent)
        assert token.isascii()
        assert token.split() == [token]  # what Anserini's whitespace analysis would produce
        assert vocab.latent(token) == latent


def test_distinct_latents_give_distinct_tokens():
    vocab = LatentVocab()
    tokens = {vocab.token(i) for i in range(5000)}
    assert len(tokens) == 5000


@pytest.mark.parametrize("prefix", ["F", "f1", "", "abcde", "f ", "f\n", "\u00e9", "f-"])
def test_invalid_prefix(prefix):
    with pytest.raises(ConfigError, match="1-4 lowercase ASCII letters") as info:
        LatentVocab(prefix)
    assert repr(prefix) in str(info.value)  # echoes what was given


@pytest.mark.parametrize("token", ["f01", "g5", "f-1", "f", "", "f1.0", "f 1", "f1\n", "F1", "ff1", "f1a"])
def test_latent_rejects_non_tokens(token):
    with pytest.raises(ValueError, match="f<id>"):
        LatentVocab().latent(token)


def test_latent_with_other_prefix():
    vocab = LatentVocab("lat")
    assert vocab.latent("lat12") == 12
    with pytest.raises(ValueError, match="lat<id>"):
        vocab.latent("f12")


def test_to_terms():
    vocab = LatentVocab()
    terms = vocab.to_terms(np.array([3, 0, 131071]), np.array([5, 1, 200]))
    assert terms == {"f3": 5, "f0": 1, "f131071": 200}
    assert all(type(w) is int for w in terms.values())  # json-serialisable, not numpy ints
    assert vocab.to_terms([], []) == {}


def test_to_terms_of_quantized_vector():
    q = quantize(sv([9, 4, 2], [1.0, 0.001, 0.5]), 10)
    assert LatentVocab("t").to_terms(q.indices, q.weights) == {"t9": 10, "t2": 5}



# -- TokenVocab: the vocabulary head's pseudo-tokens never exceed Anserini's token length ----------


class _Tokenizer:
    """The two tokenizer methods TokenVocab uses, over a fixed token list."""

    def __init__(self, tokens):
        self.tokens = tokens

    def __len__(self):
        return len(self.tokens)

    def convert_ids_to_tokens(self, ids):
        return [self.tokens[i] for i in ids]


# Gemma 3's longest tokens are runs of "▁" (3 UTF-8 bytes, 9 characters percent-encoded); two
# long tokens that share their first 300 characters must still differ.
_LONG = ["\u2581" * 40, "\u2581" * 40 + "x", "a" * 300, "a" * 300 + "b", "\u00e9" * 43 + "z" * 20]
_SHORT = ["hello", "\u2581the", "<bos>", "a b", "%41", "\u2581" * 28, "y" * 255]


def test_token_vocab_fits_anserini_token_length():
    from urllib.parse import quote

    from splare_lucene.vocab import TokenVocab

    tokens = _SHORT + _LONG + [None]  # None: an id the tokenizer does not map (padding)
    vocab = TokenVocab(_Tokenizer(tokens), size=len(tokens) + 2)
    terms = [vocab.token(i) for i in range(len(tokens) + 2)]
    assert max(len(t) for t in terms) <= 255  # vocab.ANSERINI_MAX_TOKEN_LENGTH
    assert all(len(quote(t, safe="")) > 255 for t in _LONG)  # each of them needed shortening
    assert len(set(terms)) == len(terms)  # unique
    assert [vocab.latent(t) for t in terms] == list(range(len(terms)))  # reversible
    assert all(t.isascii() and t.split() == [t] for t in terms)  # one whitespace-free ASCII term
    # short tokens are unchanged: indexes built with them stay valid
    assert terms[:len(_SHORT)] == [quote(t, safe="") for t in _SHORT]
    # deterministic: a second vocabulary (another process, another day) gives the same terms
    again = TokenVocab(_Tokenizer(list(tokens)), size=len(tokens) + 2)
    assert [again.token(i) for i in range(len(terms))] == terms
    assert vocab.to_terms([len(_SHORT)], [7]) == {terms[len(_SHORT)]: 7}


def test_shorten_token_never_cuts_an_escape():
    from splare_lucene.vocab import shorten_token

    for head in range(0, 12):  # every alignment of the escapes against the cut
        token = "a" * head + "%E2%96%81" * 40
        short = shorten_token(token)
        assert len(short) <= 255 and short.startswith("a" * head)
        body = short.split("%~")[0]
        assert body == token[:len(body)] and (body.count("%") * 3 == len(body) - head)


def _gemma3_tokenizer_dir():
    """The Gemma-3 tokenizer of the default backbone's GGUF conversion, if this machine has it."""
    from splare_lucene.backbone import cache_dir

    found = sorted(p.parent for p in (cache_dir() / "backbones").glob("gemma*/tokenizer.json"))
    if not found:
        pytest.skip(f"no converted Gemma-3 backbone under {cache_dir() / 'backbones'} (created by "
                    "the first use of the default model, e.g. `make demo`)")
    return found[0]


@pytest.mark.slow  # about 20 s: loads a 262,144-token tokenizer
def test_token_vocab_of_gemma3_fits_anserini_token_length():
    """Gemma 3's 262,144 tokens: 3 of them (ids 165-167) are longer than 255 characters
    percent-encoded; every pseudo-token now fits, distinct and reversible."""
    from urllib.parse import quote

    from transformers import AutoTokenizer

    from splare_lucene.vocab import TokenVocab

    tokenizer = AutoTokenizer.from_pretrained(str(_gemma3_tokenizer_dir()))
    vocab = TokenVocab(tokenizer)
    raw = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    terms = [vocab.token(i) for i in range(len(tokenizer))]
    assert [i for i, t in enumerate(raw) if len(quote(t, safe="")) > 255] == [165, 166, 167]
    assert max(len(t) for t in terms) == 255 and len(set(terms)) == len(terms)
    assert all(vocab.latent(terms[i]) == i for i in range(len(terms)))
    assert sum(t != quote(r, safe="") for t, r in zip(terms, raw)) == 3


def test_query_file_warns_about_queries_over_lucenes_clause_limit(tmp_path, caplog):
    """encode-queries output is searched by Anserini/Pyserini CLIs in their own JVM, where
    Lucene's 1024-clause limit holds: such queries are named in a warning."""
    import logging

    from splare_lucene.query_files import write_query_file
    from splare_lucene.types import Query

    class FakeEncoder:  # only what write_query_file uses
        def encode_stream(self, texts, **kwargs):
            for text in texts:
                yield text, text

        def terms(self, text):
            n = 1500 if text == "long" else 3
            return {f"f{i}": 1 for i in range(n)}

    queries = [Query("q1", "short"), Query("q2", "long")]
    with caplog.at_level(logging.WARNING, logger="splare_lucene.query_files"):
        summary = write_query_file(FakeEncoder(), queries, tmp_path / "q.tsv", "anserini-tsv", progress=False)
    assert summary.written == 2
    warnings = [r.getMessage() for r in caplog.records if "maxClauseCount" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("1 queries have more than 1024") and "q2" in warnings[0]
