"""Latent id <-> pseudo-token, the terms Lucene indexes. Deterministic, reversible, ASCII.

A latent ``j`` is the token ``f<j>`` (prefix configurable): short, no whitespace, and unchanged
by Anserini's pretokenized (whitespace) analysis.

The engine's limits on terms live here too, since every term the toolkit indexes or searches is
made here: the longest token Anserini indexes whole and Lucene's default cap on query terms.
"""

from __future__ import annotations

import hashlib
import logging
import re

from .errors import ConfigError

logger = logging.getLogger(__name__)

_PREFIX = re.compile(r"^[a-z]{1,4}$")

# Anserini indexes JsonVectorCollection "vector"s with -pretokenized through Lucene's
# WhitespaceAnalyzer, whose CharTokenizer cuts any token longer than 255 characters into pieces
# (CharTokenizer.DEFAULT_MAX_WORD_LEN, Lucene 9.9.1 as bundled by Anserini 1.7.1); a longer
# pseudo-token is indexed as two terms and never matches the query term it came from.
ANSERINI_MAX_TOKEN_LENGTH = 255
# Lucene's default IndexSearcher.maxClauseCount: one BooleanQuery clause per query term.
# splare_lucene.search raises it for its own searchers; Anserini's SearchCollection cannot.
LUCENE_DEFAULT_MAX_CLAUSES = 1024

# A percent-encoded token only holds [A-Za-z0-9_.~-] and "%XX" (two upper-case hex digits), so a
# "%" followed by "~" marks a shortened token and cannot collide with any short token.
_SHORTENED = "%~"
_DIGEST_CHARS = 16  # hex digits of sha256 kept: 64 bits


class LatentVocab:
    def __init__(self, prefix: str = "f"):
        if not _PREFIX.fullmatch(prefix):  # fullmatch: `$` alone also matches before a final "\n"
            raise ConfigError(f"pseudo-token prefix must be 1-4 lowercase ASCII letters; got {prefix!r}")
        self.prefix = prefix
        self._pattern = re.compile(rf"^{prefix}(0|[1-9][0-9]*)$")

    def token(self, latent: int) -> str:
        return f"{self.prefix}{int(latent)}"

    def latent(self, token: str) -> int:
        match = self._pattern.fullmatch(token)
        if not match:
            raise ValueError(f"{token!r} is not a pseudo-token of the form {self.prefix}<id>")
        return int(match.group(1))

    def to_terms(self, indices, weights) -> dict[str, int]:
        """Parallel id/weight arrays -> {token: weight} (the JsonVectorCollection 'vector')."""
        return {f"{self.prefix}{int(i)}": int(w) for i, w in zip(indices, weights)}


def shorten_token(token: str, max_length: int = ANSERINI_MAX_TOKEN_LENGTH) -> str:
    """A percent-encoded token that fits ``max_length`` characters; shorter tokens are returned
    unchanged (indexes built with them stay valid).

    A longer one becomes ``<head>%~<digest>``: its first characters (never cutting a ``%XX``
    escape), the marker ``%~`` (which percent-encoding never produces) and 16 hex digits of the
    SHA-256 of the whole token. Deterministic, and distinct for distinct tokens up to a 64-bit
    hash collision (which :class:`TokenVocab` checks for).
    """
    if len(token) <= max_length:
        return token
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    room = max_length - len(_SHORTENED) - len(digest)
    if room < 0:
        raise ConfigError(f"max_length must be at least {len(_SHORTENED) + len(digest)}; got {max_length}")
    head = token[:room]
    cut = head.rfind("%")
    if cut >= len(head) - 2:  # "...%" or "...%X": keep the escape whole by dropping it
        head = head[:cut]
    return head + _SHORTENED + digest


class TokenVocab:
    """Vocabulary representation: token id <-> the tokenizer's token string, percent-encoded
    (``urllib.parse.quote`` with nothing safe) so that every pseudo-token is ASCII without
    whitespace, and ``unquote`` gives the tokenizer's token back.

    A percent-encoded token longer than Anserini's 255-character limit (a long run of multi-byte
    characters: 3 tokens of Gemma 3's vocabulary) is shortened by :func:`shorten_token`;
    :meth:`latent` still maps it back to its id, but ``unquote`` no longer gives the tokenizer's
    token back (use ``tokenizer.convert_ids_to_tokens(vocab.latent(term))``).

    An id without a token string (an empty token, or an id in ``[len(tokenizer), size)``) is
    ``%3Cid<i>%3E`` ("<id<i>>" encoded), or ``%~id<i>`` when a real token already spells that.
    Every id thus gets its own pseudo-token (checked by tests/test_properties.py), except ids whose
    tokens are the same string.
    """

    def __init__(self, tokenizer, size: int | None = None):
        from urllib.parse import quote

        n = len(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(n))) + [None] * max(0, (size or n) - n)
        # surrogatepass: a slow (Python) tokenizer may return lone surrogates, which strict UTF-8
        # cannot encode; their bytes are invalid UTF-8, so they cannot collide with a real token.
        real = [quote(t, safe="", errors="surrogatepass") if t else None for t in tokens]
        taken = {q for q in real if q}
        quoted = []
        for i, q in enumerate(real):
            if q is None:  # no token string (an empty one, or an id beyond the tokenizer)
                q = f"%3Cid{i}%3E"  # "<id{i}>" percent-encoded, as indexes built before used
                if q in taken:  # a real token spells "<id{i}>": use a form quote never makes
                    q = f"%~id{i}"  # ("%~" + non-hex: not a shortened token either)
            quoted.append(q)
        self._tokens = [shorten_token(t) for t in quoted]
        self._ids = {t: i for i, t in enumerate(self._tokens)}
        shortened = [i for i, (q, t) in enumerate(zip(quoted, self._tokens)) if q != t]
        for i in shortened:  # a 64-bit digest collision: never seen, but never silent either
            if self._tokens.count(self._tokens[i]) > 1:
                raise ConfigError(f"token id {i} of the tokenizer shortens to the pseudo-token "
                                  f"{self._tokens[i]!r} of another token; the vocabulary "
                                  "representation needs distinct tokens: use another backbone")
        if shortened:
            logger.debug("%d tokenizer tokens are longer than %d characters percent-encoded and "
                         "are indexed in shortened form (ids %s)", len(shortened),
                         ANSERINI_MAX_TOKEN_LENGTH, shortened[:10])

    def token(self, index: int) -> str:
        return self._tokens[int(index)]

    def latent(self, token: str) -> int:
        return self._ids[token]

    def to_terms(self, indices, weights) -> dict[str, int]:
        return {self._tokens[int(i)]: int(w) for i, w in zip(indices, weights)}
