"""Property-based tests (hypothesis): quantization, pseudo-token round trips, and the JSONL
round trip from the encode engines' part writer to the readers indexing uses.

Modest settings (a few hundred examples, no deadline): the file runs in seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from splare_lucene.errors import ConfigError
from splare_lucene.quantize import MAX_IMPACT, dequantize, quantize
from splare_lucene.types import ImpactVector, SparseVector
from splare_lucene.vocab import ANSERINI_MAX_TOKEN_LENGTH, LatentVocab, TokenVocab

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = dict(allow_nan=False, allow_infinity=False)
weights_st = st.floats(min_value=0.0, max_value=1e6, **finite)
scales_st = st.floats(min_value=1e-3, max_value=1e4, **finite)


def _x(weight: float, scale: float) -> float:
    """What quantize rounds: float64(weight) * scale."""
    return float(np.float64(weight) * scale)


# -- quantization ---------------------------------------------------------------------------------


@PROPS
@given(st.lists(weights_st, max_size=50), scales_st, st.booleans())
@example([0.49999999999999994], 1.0, False)  # floor(x + 0.5) rounded this up to impact 1
@example([0.5, 1.5, 2.5], 1.0, False)  # halves round up, not to even
def test_impacts_are_ints_in_range_zero_exactly_below_half(weights, scale, as_float32):
    """Impacts are int64 in [1, MAX_IMPACT], within half a step of weight x scale; an entry is
    dropped exactly when weight x scale < 0.5; kept ids keep their input order."""
    values = np.asarray(weights, dtype=np.float32 if as_float32 else np.float64)
    vector = SparseVector(np.arange(len(values), dtype=np.int64), values)
    xs = [_x(w, scale) for w in values]
    if any(x >= MAX_IMPACT + 0.5 for x in xs):  # beyond Lucene's int term frequency: refused
        with pytest.raises(ConfigError, match="exceeds the largest impact"):
            quantize(vector, scale)
        return
    out = quantize(vector, scale)
    assert isinstance(out, ImpactVector)
    assert out.weights.dtype == np.int64 and out.indices.dtype == np.int64
    assert out.indices.tolist() == [i for i, x in enumerate(xs) if x >= 0.5]
    for i, impact in zip(out.indices.tolist(), out.weights.tolist()):
        assert 1 <= impact <= MAX_IMPACT
        assert impact - 0.5 <= xs[i] < impact + 0.5  # round half up


@PROPS
@given(weights_st, weights_st, scales_st)
def test_impacts_are_monotone_in_the_weight(a, b, scale):
    """A larger weight never gets a smaller impact (dropped counts as 0)."""
    low, high = min(a, b), max(a, b)
    if _x(high, scale) >= MAX_IMPACT + 0.5:
        return  # refused (see above)
    out = quantize(SparseVector(np.array([0, 1]), np.array([low, high])), scale)
    impact = dict(zip(out.indices.tolist(), out.weights.tolist()))
    assert impact.get(0, 0) <= impact.get(1, 0)


@PROPS
@given(st.lists(st.integers(1, 2**23 - 1), max_size=50), scales_st)
def test_dequantize_then_quantize_gives_the_impacts_back(impacts, scale):
    """quantize(dequantize(q, s), s) == q for impacts below 2**23 (the documented float32 range)."""
    q = ImpactVector(np.arange(len(impacts), dtype=np.int64), np.asarray(impacts, dtype=np.int64))
    back = quantize(dequantize(q, scale), scale)
    assert back.indices.tolist() == q.indices.tolist()
    assert back.weights.tolist() == q.weights.tolist()


@PROPS
@given(st.one_of(st.just(float("nan")), st.just(float("inf")),
                 st.floats(min_value=3e9, max_value=1e300, **finite)))
def test_non_finite_or_oversized_weights_are_refused_not_dropped(weight):
    """NaN/inf weights and impacts above Lucene's int term frequency used to overflow int64 and
    vanish (or wrap); now each is a ConfigError naming the latent."""
    with pytest.raises(ConfigError, match=r"latent 7"):
        quantize(SparseVector(np.array([3, 7]), np.array([1.0, weight])), 1.0)


@pytest.mark.parametrize("scale", [float("inf"), float("-inf")])
def test_infinite_scale_is_refused(scale):
    with pytest.raises(ConfigError, match="scale must be > 0 and finite"):
        quantize(SparseVector(np.array([1]), np.array([1.0])), scale)


# -- pseudo-tokens --------------------------------------------------------------------------------


def _anserini_term(token: str) -> bool:
    """Held whole by JsonVectorCollection under -pretokenized (WhitespaceAnalyzer, 255 chars)."""
    return bool(token) and len(token) <= ANSERINI_MAX_TOKEN_LENGTH and not any(c.isspace() for c in token)


@PROPS
@given(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=1, max_size=4),
       st.integers(1, 2**31 - 1).flatmap(lambda w: st.tuples(st.just(w), st.lists(
           st.integers(0, w - 1), min_size=1, max_size=20, unique=True))))
def test_latent_pseudo_tokens_round_trip(prefix, width_and_latents):
    """Any latent in [0, width) -> an Anserini-safe token -> the same latent; distinct latents
    give distinct tokens."""
    _, latents = width_and_latents
    vocab = LatentVocab(prefix)
    tokens = [vocab.token(j) for j in latents]
    assert all(_anserini_term(t) and t.isascii() for t in tokens)
    assert [vocab.latent(t) for t in tokens] == latents
    assert len(set(tokens)) == len(tokens)
    assert vocab.to_terms(latents, [1] * len(latents)) == dict.fromkeys(tokens, 1)


class _FakeTokenizer:
    """The two things TokenVocab reads from a transformers tokenizer."""

    def __init__(self, tokens: list[str | None]):
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        return [self.tokens[i] for i in ids]


# Any unicode, including whitespace, "%", control characters, lone surrogates (a slow Python
# tokenizer can return them), and long runs of 4-byte characters (shortened past 255 chars).
token_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),
    st.text(st.sampled_from(" \t\n\r%~\x00\x7f\u2028é語😀"), max_size=12),
    st.text(st.sampled_from("😀%~a"), min_size=60, max_size=120),
)


@PROPS
@given(st.lists(st.one_of(token_text, st.none()), max_size=40, unique=True), st.integers(0, 5))
@example(["", "<id0>"], 0)  # the placeholder of an empty token collided with a real token
@example(["a", "<id2>"], 1)  # so did the placeholder of an id beyond the tokenizer
def test_tokenizer_pseudo_tokens_round_trip(tokens, extra):
    """Every id (tokenizer ids, and padded ids up to ``size``) gets an Anserini-safe ASCII
    pseudo-token; ``latent`` maps it back to its id; distinct ids get distinct tokens; a token
    that is not shortened percent-decodes to the tokenizer's string."""
    vocab = TokenVocab(_FakeTokenizer(tokens), size=len(tokens) + extra)
    size = len(tokens) + extra
    pseudo = [vocab.token(i) for i in range(size)]
    assert all(_anserini_term(t) and t.isascii() for t in pseudo), pseudo
    assert [vocab.latent(t) for t in pseudo] == list(range(size))
    assert len(set(pseudo)) == size
    for t, original in zip(pseudo, tokens):
        if original and "%~" not in t:
            assert unquote(t, errors="surrogatepass") == original


# -- JSONL: the engines' part writer -> read_vectors / read_outputs -------------------------------

_ID_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters="\ufeff")
ids_st = st.text(_ID_CHARS, min_size=1, max_size=20)
# terms without whitespace (Zs/Zl/Zp, and the Cc controls TAB, LF, ...): `index --jsonl` refuses
# them, since Anserini's pretokenized analysis would split them (jsonl.VectorRules)
term_st = st.one_of(st.integers(0, 10**6).map(LatentVocab().token),
                    st.text(st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1,
                            max_size=12))
vector_st = st.dictionaries(term_st, st.integers(1, MAX_IMPACT), max_size=8)
text_st = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
records_st = st.lists(st.tuples(ids_st, text_st, vector_st), max_size=12, unique_by=lambda r: r[0])


def _write_parts(directory: Path, records: list, part_size: int, contents: bool) -> None:
    """Write ``records`` as encode's engines do: one PartsDir shard, part by part, then sealed."""
    from splare_lucene.engines.parts import EncodingJob, PartsDir, plan_parts

    job = EncodingJob(model="prop", model_fingerprint="0" * 16, signature={"scale": 100.0}, config={},
                      corpus={"format": "jsonl", "size": 1, "path": "corpus.jsonl"},
                      part_size=part_size, allow_empty=True, contents=contents)
    parts = PartsDir(directory, job)
    parts.prepare()
    for part in plan_parts(len(records), part_size):
        parts.write_part(part, records[part.start:part.stop])
    parts.finish(len(records))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records_st, st.integers(1, 5), st.booleans())
def test_parts_round_trip_through_the_readers(records, part_size, contents):
    """Ids, vectors (and contents) written by PartsDir.write_part come back unchanged, in order,
    from jsonl.read_vectors and from the files read_outputs hands to the indexer."""
    from splare_lucene.engines.parts import read_outputs
    from splare_lucene.jsonl import read_vectors
    from splare_lucene.textio import iter_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "encoded"
        _write_parts(out, records, part_size, contents)
        if records:
            assert list(read_vectors(out)) == [(doc_id, vector) for doc_id, _, vector in records]
        merged = read_outputs([out], check_ids=True, progress=False)
        lines = [obj for f in merged.files for _, obj in iter_jsonl(f)]
        assert [(o["id"], o["contents"], o["vector"]) for o in lines] == \
            [(doc_id, text if contents else "", vector) for doc_id, text, vector in records]
        assert merged.summary["documents"] == len(records)
        assert merged.summary["empty"] == sum(1 for r in records if not r[2])
