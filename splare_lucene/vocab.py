"""Latent id <-> pseudo-token, the terms Lucene indexes. Deterministic, reversible, ASCII.

A latent ``j`` is the token ``f<j>`` (prefix configurable): short, no whitespace, and unchanged
by Anserini's pretokenized (whitespace) analysis.
"""

from __future__ import annotations

import re

from .errors import ConfigError

_PREFIX = re.compile(r"^[a-z]{1,4}$")


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


class TokenVocab:
    """Vocabulary representation: token id <-> the tokenizer's token string, percent-encoded
    (``urllib.parse.quote`` with nothing safe) so that every pseudo-token is ASCII without
    whitespace, and ``unquote`` gives the tokenizer's token back."""

    def __init__(self, tokenizer, size: int | None = None):
        from urllib.parse import quote

        n = len(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(n))) + [None] * max(0, (size or n) - n)
        self._tokens = [quote(t if t is not None else f"<id{i}>", safe="") or f"%3Cid{i}%3E"
                        for i, t in enumerate(tokens)]
        self._ids = {t: i for i, t in enumerate(self._tokens)}

    def token(self, index: int) -> str:
        return self._tokens[int(index)]

    def latent(self, token: str) -> int:
        return self._ids[token]

    def to_terms(self, indices, weights) -> dict[str, int]:
        return {self._tokens[int(i)]: int(w) for i, w in zip(indices, weights)}
