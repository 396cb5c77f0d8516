"""Case augmentation for retrieval fine-tuning: some training texts rewritten in another case.

A model trained on text as given (``text_normalization`` "none") sees mostly sentence-case
text, so an UPPER-cased query lands on tokens it rarely saw (issue 12: cranfield nDCG@10 0.08
with upper-cased queries against 0.31 lower-cased, same index). ``--case-augmentation P``
rewrites each training text (query, positive and negative alike, independently) with
probability ``P`` into one of three variants drawn uniformly:

  lower   ``str.lower()``
  upper   ``str.upper()``
  title   the first character of each space-separated word upper-cased, the rest unchanged
          (:func:`title_case`; ``str.title()`` would also lower-case the rest and turn "what's"
          into "What'S")

The draw is a function of (seed, epoch, batch index) only, so a resumed run and a run split
over N processes see exactly the texts a one-process run sees. The model's own
``text_normalization`` is applied after this (through ``encoder.pooled``); with "lowercase" the
augmentation would change nothing, so ``train`` refuses the combination.
"""

from __future__ import annotations

import random
from dataclasses import replace

from ..errors import ConfigError
from .data import TrainExample


def title_case(text: str) -> str:
    """The first character of each space-separated word upper-cased, the rest left as it is."""
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


CASE_VARIANTS = {"lower": str.lower, "upper": str.upper, "title": title_case}


def check_probability(p: float) -> float:
    """``p`` if it is a probability in [0, 1]; else ConfigError."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"case_augmentation is the probability that a training text is re-cased; it must be "
                          f"in [0, 1]; got {p}")
    return p


def check_normalization(p: float, normalization: str) -> None:
    """ConfigError when case augmentation (``p`` > 0) meets a ``text_normalization`` that rewrites
    every text before tokenization (anything but "none"): the re-cased texts would be read alike."""
    if p and normalization != "none":
        raise ConfigError(f"--case-augmentation re-cases training texts, but text_normalization {normalization!r} "
                          "rewrites every text before tokenization, so it would change nothing (the built-in "
                          "model reads text lower-cased, and a model trained from it inherits that). Train with "
                          "--text-normalization none, then read the trained model lower-cased with `splare-lucene "
                          "configure --model OUT --output OUT-lc --text-normalization lowercase` (how the default "
                          "was made), or drop --case-augmentation")


def case_augment(batch: list[TrainExample], p: float, key: str) -> list[TrainExample]:
    """``batch`` with each text (query and every document) replaced, with probability ``p``, by
    one of :data:`CASE_VARIANTS` (uniform). ``key`` seeds the draw (the same key gives the same
    texts); teacher scores are kept as they are. ``p`` = 0 returns ``batch`` itself."""
    if check_probability(p) == 0.0:
        return batch
    rng = random.Random(f"case-augmentation:{key}")
    variants = list(CASE_VARIANTS.values())

    def recase(text: str) -> str:
        # two draws per text whatever the outcome, so one text's draw never shifts the others'
        hit, variant = rng.random() < p, rng.choice(variants)
        return variant(text) if hit else text

    return [replace(e, query=recase(e.query), docs=tuple(recase(d) for d in e.docs)) for e in batch]
