"""Validated number types for argparse (``type=``), shared by every command.

A bad value is refused while parsing, before any model or JVM loads, with argparse's own
``argument --k: must be a positive integer, got 0`` (exit status 2). Each type states its
accepted range and echoes the value given; ``math.nan`` and infinities are refused everywhere.

Every numeric option of every command uses one of these (tests/test_cli_errors.py walks the
built parsers and fails on a numeric option without one). A check that involves two options
(``--shard-id`` below ``--num-shards``) cannot be a ``type=``: a command module then defines
``check_arguments(args)``, which raises :class:`ArgumentCheckError` and is run by ``main`` right
after parsing, with the same exit status 2.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


class ArgumentCheckError(Exception):
    """Two or more arguments that do not fit together (raised by ``check_arguments``). The
    message starts with ``argument --NAME:`` as argparse's own errors do."""


@dataclass(frozen=True)
class NumberType:
    """An argparse ``type=`` accepting ``kind`` (int or float) values in a range.

    ``low``/``high``: the bounds (None: unbounded); ``low_open``/``high_open``: whether the bound
    itself is refused. ``description`` is the message's noun phrase ("a positive integer").
    ``refused`` and ``accepted`` are sample values (strings, as typed) that the tests feed to
    every option of this type.
    """

    kind: type
    description: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    refused: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.description

    def __call__(self, text: str) -> int | float:
        """Parse ``text``; raises argparse.ArgumentTypeError naming the range and the value."""
        value: int | float
        try:
            value = int(text, 10) if self.kind is int else float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {self.description}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {self.description} (a finite number), got {text!r}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {self.description}, got {text}")
        return value

    def __repr__(self) -> str:
        return f"NumberType({self.description!r})"


_NOT_NUMBERS = ("x", "", "nan", "inf")

# Counts go to Java (Lucene's numHits, Anserini's thread pools) and to torch as 32-bit ints:
# larger values overflowed there ("value too large to convert to jint") instead of being refused.
INT_MAX = 2**31 - 1
# java.util.concurrent.ForkJoinPool's parallelism limit (its MAX_CAP): Anserini's batch search and
# indexing pools refuse more threads with a bare IllegalArgumentException.
MAX_THREADS = 32767
positive_int = NumberType(int, f"a positive integer (at most {INT_MAX})", low=0, low_open=True, high=INT_MAX,
                          refused=("0", "-5", "1.5", "1e3", str(INT_MAX + 1), "99999999999999999999",
                                   *_NOT_NUMBERS), accepted=("1", "32"))
non_negative_int = NumberType(int, f"a non-negative integer (at most {INT_MAX})", low=0, high=INT_MAX,
                              refused=("-1", "2.5", str(INT_MAX + 1), *_NOT_NUMBERS), accepted=("0", "7"))
thread_count = NumberType(int, f"a thread count in [1, {MAX_THREADS}]", low=1, high=MAX_THREADS,
                          refused=("0", "-1", str(MAX_THREADS + 1), "3000000000", *_NOT_NUMBERS),
                          accepted=("1", "4"))
# numpy's and Python's seeding accept at most 32-bit unsigned seeds everywhere the toolkit seeds
seed_int = NumberType(int, f"an integer in [0, {2**32 - 1}]", low=0, high=2**32 - 1,
                      refused=("-1", str(2**32), "0.5", *_NOT_NUMBERS), accepted=("0", "1234"))
positive_float = NumberType(float, "a positive number", low=0.0, low_open=True,
                            refused=("0", "-1e-4", *_NOT_NUMBERS, "-inf"), accepted=("5e-5", "100"))
non_negative_float = NumberType(float, "a non-negative number", low=0.0,
                                refused=("-0.5", *_NOT_NUMBERS), accepted=("0", "1e-4", "2.5"))
probability = NumberType(float, "a number in (0, 1]", low=0.0, high=1.0, low_open=True,
                         refused=("0", "-0.1", "1.5", *_NOT_NUMBERS), accepted=("0.2", "1"))
fraction = NumberType(float, "a fraction in [0, 1]", low=0.0, high=1.0,
                      refused=("-0.01", "1.01", *_NOT_NUMBERS), accepted=("0", "0.3", "1"))
dropout = NumberType(float, "a dropout rate in [0, 1)", low=0.0, high=1.0, high_open=True,
                     refused=("-0.1", "1", *_NOT_NUMBERS), accepted=("0", "0.1"))

NUMBER_TYPES: tuple[NumberType, ...] = (positive_int, non_negative_int, thread_count, seed_int, positive_float,
                                        non_negative_float, probability, fraction, dropout)
