"""Typed exceptions. Every message says what went wrong and how to fix it."""

from __future__ import annotations


class SplareError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class InputError(SplareError, ValueError):
    """Bad user input (a corpus, queries, a run file), located as precisely as possible."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ConfigError(SplareError, ValueError):
    """A configuration value is not allowed, or two settings do not fit together."""


class CheckpointError(SplareError, ValueError):
    """An SAE or model checkpoint is missing, malformed, or does not match the backbone."""


class TrainingError(SplareError, RuntimeError):
    """Training went wrong numerically (a loss that is not finite); the model is not written."""


class JavaNotFoundError(SplareError, RuntimeError):
    """No Java 21+ runtime was found for Anserini."""


class JavaStartError(SplareError, RuntimeError):
    """The Java virtual machine did not start (bad JVM options, a JAVA_HOME that is no JDK)."""


class IndexMismatchError(SplareError, ValueError):
    """A model and an index were built with different vocabularies or quantization."""


class SearchError(SplareError, RuntimeError):
    """Lucene failed on a query; the message names the query and the Java exception."""
