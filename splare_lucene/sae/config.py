"""The toolkit's SAE config: the settings that change what the encoder outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import CheckpointError, ConfigError

SAE_FORMAT_VERSION = 1

# Where in the backbone an SAE reads its input: name -> what it is (TransformerLens hook name).
# splare-lucene feeds the SAE the residual stream after block L (transformers' hidden_states[L+1]),
# so only RESIDUAL_SITES fit; the others are recorded so that building a model can refuse them.
HOOK_SITES: dict[str, str] = {
    "resid_post": "the residual stream after block L (blocks.L.hook_resid_post)",
    "resid_pre": "the residual stream before block L, i.e. after block L-1 (blocks.L.hook_resid_pre)",
    "resid_mid": "the residual stream inside block L, between attention and MLP (blocks.L.hook_resid_mid)",
    "mlp_in": "the normalised input of block L's MLP (blocks.L.ln2.hook_normalized)",
    "mlp_out": "the output of block L's MLP (blocks.L.hook_mlp_out)",
    "attn_out": "the output of block L's attention (blocks.L.hook_attn_out)",
    "attn_z": "the attention heads' outputs before the output projection (blocks.L.attn.hook_z)",
    "transcoder": "a transcoder: it reads block L's MLP input and predicts the MLP's output",
    "embed": "the token embeddings (hook_embed)",
    "crosscoder": "a crosscoder over several layers' residual streams",
    "other": "another activation inside block L",
}
RESIDUAL_SITES = ("resid_post", "resid_pre")


@dataclass(frozen=True)
class SAEConfig:
    """``architecture`` picks the activation: relu (standard), jumprelu or topk.

    Encoding is ``act((x * input_scale - b_dec * apply_b_dec_to_input) @ W_enc + b_enc)``.
    ``layer`` and ``hook_site`` say which activation it was trained on: building a model refuses
    a site outside ``RESIDUAL_SITES`` (``sae.formats.check_site``).
    """

    architecture: str
    d_in: int
    d_sae: int
    k: int | None = None  # topk only
    apply_b_dec_to_input: bool = False
    input_scale: float = 1.0  # e.g. Llama Scope's dataset-wise norm: sqrt(d_model) / norm_in
    layer: int | None = None  # the backbone layer it was trained on (residual stream after it)
    source: str = "splare-lucene"  # the checkpoint format it came from (informational)
    # where it was trained (a HOOK_SITES key); None: the checkpoint does not say (configs written
    # before this field existed read as None too)
    hook_site: str | None = None

    def __post_init__(self):
        from . import ARCHITECTURES  # the one registry

        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"SAE architecture must be one of {sorted(ARCHITECTURES)}; "
                              f"got {self.architecture!r}")
        if self.d_in <= 0 or self.d_sae <= 0:
            raise ConfigError(f"SAE d_in and d_sae must be positive; got {self.d_in}, {self.d_sae}")
        if self.architecture == "topk" and not (self.k and 0 < self.k <= self.d_sae):
            raise ConfigError(f"a topk SAE needs 0 < k <= d_sae={self.d_sae}; got k={self.k}")
        if self.hook_site is not None and self.hook_site not in HOOK_SITES:
            raise ConfigError(f"SAE hook_site must be one of {list(HOOK_SITES)} or null (unknown); "
                              f"got {self.hook_site!r}")

    def to_dict(self) -> dict:
        return {"format_version": SAE_FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, obj: dict, where: str = "SAE config") -> "SAEConfig":
        obj = dict(obj)
        version = obj.pop("format_version", SAE_FORMAT_VERSION)
        if not isinstance(version, int) or version > SAE_FORMAT_VERSION:
            raise CheckpointError(f"{where} has format_version {version}; this splare-lucene reads "
                                  f"up to {SAE_FORMAT_VERSION}: upgrade with `pip install -U splare-lucene`")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise CheckpointError(f"{where} has unknown keys {unknown}; known keys: {sorted(known)}")
        try:
            return cls(**obj)
        except TypeError as exc:  # a required key is missing
            raise CheckpointError(f"{where}: {exc}") from exc

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "SAEConfig":
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            folder = Path(path).parent
            raise CheckpointError(
                f"missing SAE config file {path}: the SAE folder {folder} holds its weights but not "
                f"{Path(path).name}, which says the SAE's architecture and sizes. Restore the file from "
                "where the model came from, or rebuild the model directory from its backbone and SAE: "
                "`splare-lucene assemble --backbone BACKBONE --sae SAE --output DIR` "
                "(docs/sae-formats.md lists the files of each SAE format)") from exc
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
            raise CheckpointError(f"cannot read SAE config {path}: {exc}") from exc
        return cls.from_dict(obj, where=str(path))
