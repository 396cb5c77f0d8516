"""Texts -> per-token latent activations, the values that max-pooling turns into a vector.

The path is the encoder's own (:meth:`SplareEncoder.pooled`): ``SplareEncoder.prepare_texts`` (the
model's text normalisation and the side's prefix), ``backbone.tokenize``,
``backbone.hidden_states``, then the head's per-token ``encode`` and ``pooling.saturate``
(``log(1 + ReLU)``): the function ``pooling.max_pool`` / ``SparseAutoencoder.pool_dense`` take the
masked max of. So ``activations.max(0)`` over a text's pooled tokens equals
``encoder.pooled(..., apply_top_k=False)`` (tests/test_latent_labels.py checks it). Nothing is kept
beyond one batch: callers reduce each batch (labels keep top-n, explanations keep a few latents).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from .records import TextTokens

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenActivations:
    """One text's pooled tokens and their activations.

    ``tokens.tokens[i]`` / ``tokens.spans[i]``: the i-th pooled token (padding and, unless the
    model pools them, special tokens left out) and its character span in the text;
    ``values``: (n_tokens, d_sae) float32 torch tensor, ``log(1 + ReLU(latent))`` per token.
    """

    tokens: TextTokens
    values: "object"  # torch.Tensor (n_tokens, d_sae); typed loosely to keep torch out of imports


def token_activations(encoder, texts: Sequence[str], kind: str = "document",
                      max_elements: int = 1 << 24) -> list[TokenActivations]:
    """Per-token activations of ``texts`` on the ``kind`` side ("query" or "document").

    ``max_elements`` bounds the (tokens x d_sae) values computed at a time (a runtime knob).
    Memory: the returned tensors hold (sum of pooled tokens) x d_sae float32 values; callers that
    stream a corpus pass small batches. Raises ConfigError for an unknown ``kind`` and for a
    model whose head has no per-token ``encode``.
    """
    import torch

    from ..backbone import hidden_states, tokenize
    from ..errors import ConfigError
    from ..pooling import saturate

    side = encoder.config.side(kind)  # ConfigError for another kind
    head = encoder.head
    if not hasattr(head, "encode"):
        raise ConfigError(f"the model's head ({type(head).__name__}) has no per-token encode; "
                          "explanations need one")
    texts = list(texts)
    if not texts:
        return []
    # The encoder's own text preparation (normalisation, then the side's prefix), so that the
    # activations are those of the vectors it indexes and searches.
    full = encoder.prepare_texts(texts, kind)
    # Spans are offsets in the normalised text. str.lower() maps almost every character to one
    # character, so when the length is unchanged the offsets are those of the text as given, which
    # is shown; otherwise (e.g. "İ" -> "i̇") the normalised text is shown with its own offsets.
    seen = [f[len(side.prefix):] for f in full]
    texts = [t if len(t) == len(n) else n for t, n in zip(texts, seen)]
    with torch.inference_mode():
        ids, attn, pool_mask = tokenize(encoder.backbone, full, side.max_length, encoder.device,
                                        encoder.config.pool_special_tokens)
        hidden = hidden_states(encoder.backbone, ids, attn, encoder.config.bidirectional)  # (B, T, d)
        spans = _token_spans(encoder.backbone.tokenizer, full, side.max_length, ids, len(side.prefix))
        d_sae = encoder.d_sae
        out = []
        for b, text in enumerate(texts):
            keep = pool_mask[b].nonzero().squeeze(-1)  # (n,) positions pooled
            h = hidden[b, keep]  # (n, d)
            chunk = max(1, max_elements // max(1, d_sae))
            parts = [saturate(head.encode(h[s:s + chunk])).float() for s in range(0, h.shape[0], chunk)]
            values = torch.cat(parts) if parts else torch.zeros(0, d_sae)  # (n, d_sae)
            positions = keep.tolist()
            toks, sp = [], []
            for p in positions:
                start, end = spans[b][p]
                while 0 <= start < end and text[start].isspace():  # SentencePiece offsets include the space
                    start += 1
                sp.append((start, end))
                toks.append(text[start:end] if start >= 0 else _token_string(encoder, int(ids[b, p])))
            out.append(TokenActivations(TextTokens(text, tuple(toks), tuple(sp)), values.cpu()))
    return out


def _token_string(encoder, token_id: int) -> str:
    tok = encoder.backbone.tokenizer.convert_ids_to_tokens(token_id)
    return str(tok).replace("\u2581", " ").replace("\u0120", " ") if tok is not None else f"<{token_id}>"


def _token_spans(tokenizer, full: list[str], max_length: int, ids, prefix_len: int) -> list[list[tuple[int, int]]]:
    """Character spans, in the text without the side's prefix, of every position of ``ids``
    ((B, T), as ``backbone.tokenize`` made them); (-1, -1) for padding, special tokens, prefix
    tokens and when the tokenizer gives no offsets (a slow tokenizer)."""
    B, T = ids.shape
    none = [[(-1, -1)] * T for _ in range(B)]
    if not getattr(tokenizer, "is_fast", False):
        logger.debug("tokenizer %s is not a fast tokenizer: no character offsets, tokens shown "
                     "as the tokenizer spells them", type(tokenizer).__name__)
        return none
    # The same call as backbone.tokenize (same truncation, padding and special-token handling),
    # with offsets; checked against its ids so that a difference can never misplace a highlight.
    enc = tokenizer(full, max_length=max_length, truncation=True, padding="longest", return_tensors="pt",
                    return_offsets_mapping=True, split_special_tokens=True)
    if tuple(enc["input_ids"].shape) != (B, T) or not bool((enc["input_ids"] == ids.cpu()).all()):
        logger.warning("the tokenizer's offsets do not line up with the encoder's tokens; tokens are "
                       "shown without their place in the text")
        return none
    offsets = enc["offset_mapping"].tolist()
    out = []
    for b in range(B):
        row = []
        for start, end in offsets[b]:
            if end <= start or start < prefix_len:  # special/padding (0, 0) or inside the prefix
                row.append((-1, -1))
            else:
                row.append((start - prefix_len, end - prefix_len))
        out.append(row)
    return out
