"""Faster CPU query encoding: int8 dynamic quantization of the backbone's linear layers.

What a query costs (default model, one thread; ``benchmarks/query_encode.py``, cranfield p50):
about 70% of the time is the backbone, mostly the 84 ``nn.Linear`` matmuls of its 12 kept blocks
(7 per block; the LoRA adapter is already merged into them at load by ``encoder._merge_adapter``,
so it adds no matmul); about 29% the SAE encoder (its 640 x 32,768 matmul and per-token top-k);
the tokenizer, top-k and terms under 1%. Blocks above L, the final norm and the LM head are
never built (``backbone.py``) and the 262k-row embedding is only gathered. So the only large
lever left on the CPU is the matmuls' arithmetic itself, which ``quantize="int8"`` changes:

* **smoothing** (SmoothQuant, Xiao et al. 2023): per input channel j of a group of linears that
  read the same activation, s_j = max|X_j|^alpha / max|W_:,j|^(1-alpha); the weights' column j is
  multiplied by s_j and the activation divided by s_j, folded into the RMSNorm before the
  group (q/k/v after ``input_layernorm``; gate/up after the norm feeding the MLP) or into
  ``up_proj``'s rows (for ``down_proj``). Exact in real arithmetic (vectors identical in fp32,
  tested); it moves activation outliers (Gemma's large channels) into the weights, where int8 is
  per output channel. The maxima come from a fixed calibration set: the packaged demo corpus and
  queries (``assets/demo``), so the quantized model is the same on every machine.
* **int8**: every ``nn.Linear`` becomes an ``Int8DynamicLinear`` (fbgemm/x86 kernels through
  ``torch.ops.quantized.linear_dynamic``; weights int8 per output channel, activations quantized
  per tensor at run time; see the class for the bit split).

This is lossy: on cranfield (225 queries, all 1,398 documents; benchmarks/results/query_encode.md,
2026-12-01) it was 1.96x faster at p50 (2.01x on squad-train) with 0.84 of the query terms kept,
top-10 agreement 0.77 with the reference's results (below the 0.95 aimed at) and the same nDCG@10
(0.304 against 0.303). The SAE encoder stays float32. So it is opt-in and
for queries only: an index must be built by the float reference, and
``SplareEncoder`` refuses to encode documents with a quantized backbone. This module imports torch:
it is imported only by the encoder methods that need it, never by ``splare_lucene`` itself.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Sequence

import torch

from .errors import ConfigError

logger = logging.getLogger(__name__)

QUERY_QUANTIZATIONS = ("none", "int8")
SMOOTH_ALPHA = 0.5  # SmoothQuant's default migration strength
_DEMO = Path(__file__).parent / "assets" / "demo"


def check_query_quantization(name: str, device: str) -> str:
    """Validate ``quantize`` for ``SplareEncoder.from_pretrained``; returns it.

    Raises ConfigError for an unknown name (listing the choices) or int8 on a device other than
    the CPU (the fbgemm/x86 int8 kernels are CPU-only; GPUs have bfloat16 instead: ``--dtype``).
    """
    if name not in QUERY_QUANTIZATIONS:
        raise ConfigError(f"query quantization must be one of {list(QUERY_QUANTIZATIONS)}; got {name!r}")
    if name != "none" and not str(device).startswith("cpu"):
        raise ConfigError(f"query quantization {name!r} runs on the CPU only (torch's int8 dynamic kernels); "
                          f"the model is on {device!r}: use --device cpu, or --query-quantization none "
                          "(on a GPU, --dtype bfloat16 is the fast path)")
    return name


def calibration_texts() -> list[str]:
    """The fixed calibration set: the packaged demo corpus and queries (about 40 short texts)."""
    texts = []
    for name in ("queries.jsonl", "corpus.jsonl"):
        for line in (_DEMO / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.append(" ".join(str(row.get(k, "")) for k in ("title", "text") if row.get(k)))
    return [t for t in texts if t]


def _mlp_norm(layer):
    """The norm whose output feeds the MLP: Gemma 2/3 ``pre_feedforward_layernorm`` (their
    ``post_attention_layernorm`` normalises the attention output before the residual add),
    Llama/Qwen/Mistral ``post_attention_layernorm``."""
    norm = getattr(layer, "pre_feedforward_layernorm", None)
    return norm if norm is not None else getattr(layer, "post_attention_layernorm", None)


def _fold_into_norm(norm, s) -> bool:
    """Divide ``norm``'s output by ``s`` (d,) in place; False if its form is unknown.

    Gemma RMSNorms scale by ``1 + weight`` (transformers' Gemma2/Gemma3RMSNorm), the others by
    ``weight``."""
    weight = getattr(norm, "weight", None)
    if weight is None or getattr(norm, "bias", None) is not None:
        return False  # LayerNorm with a bias (BERT) would need the bias divided too: not handled
    if type(norm).__name__.startswith("Gemma"):
        weight.copy_((1 + weight) / s - 1)
    else:
        weight.div_(s)
    return True


def smooth_(model, act_max: dict[str, torch.Tensor], alpha: float = SMOOTH_ALPHA) -> int:
    """SmoothQuant equalisation of ``model``'s decoder blocks, in place; returns groups smoothed.

    ``act_max``: {linear module name: (d_in,) max |input| per channel} from ``activation_maxima``.
    Blocks of another layout (encoders, norms with a bias) are left as they are, which is safe:
    the rescaling only improves int8 accuracy, it is not needed for correctness.
    """
    modules = dict(model.named_modules())
    blocks = getattr(model, "layers", None)
    if blocks is None:
        logger.info("int8: %s has no decoder blocks (model.layers); not smoothed", type(model).__name__)
        return 0
    done = 0
    with torch.no_grad():
        for i, layer in enumerate(blocks):
            prefix = f"layers.{i}."
            attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
            groups = []
            if attn is not None and hasattr(layer, "input_layernorm"):
                groups.append((layer.input_layernorm, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]))
            if mlp is not None and _mlp_norm(layer) is not None:
                groups.append((_mlp_norm(layer), ["mlp.gate_proj", "mlp.up_proj"]))
            for norm, names in groups:
                names = [prefix + n for n in names]
                if not all(n in modules and n in act_max for n in names):
                    continue
                s = _scales([act_max[n] for n in names], [modules[n].weight for n in names], alpha)
                if _fold_into_norm(norm, s):
                    for n in names:
                        modules[n].weight.mul_(s)  # (out, in) * (in,): column j times s_j
                    done += 1
            up, down = prefix + "mlp.up_proj", prefix + "mlp.down_proj"
            if up in modules and down in modules and down in act_max:
                # down_proj reads act(gate) * up: dividing up_proj's output rows divides its input
                s = _scales([act_max[down]], [modules[down].weight], alpha)
                modules[up].weight.div_(s[:, None])
                if modules[up].bias is not None:
                    modules[up].bias.div_(s)
                modules[down].weight.mul_(s)
                done += 1
    return done


def _scales(act: Sequence, weights: Sequence, alpha: float):
    """SmoothQuant's s_j = max|X_j|^alpha / max|W_:,j|^(1-alpha) over a group sharing X. (d_in,)"""
    a = torch.stack(list(act)).amax(0).clamp(min=1e-5)
    w = torch.stack([x.abs().amax(0) for x in weights]).amax(0).clamp(min=1e-5)
    return (a.pow(alpha) / w.pow(1 - alpha)).clamp(min=1e-5).to(weights[0].dtype)


def activation_maxima(encoder, texts: Sequence[str], batch_size: int = 1) -> dict[str, torch.Tensor]:
    """{linear name: (d_in,) max |input| over every token of ``texts`` encoded as queries}.

    One text at a time by default: in a padded batch the padding positions' activations would
    count too, and the maxima would depend on how texts were batched."""
    model = encoder.backbone.model
    stats: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            def hook(_module, inputs, _output, name=name):
                x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)  # (d_in,)
                stats[name] = torch.maximum(stats[name], x) if name in stats else x
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                encoder.pooled(list(texts[s:s + batch_size]), "query")
    finally:
        for h in hooks:
            h.remove()
    return stats


class Int8DynamicLinear(torch.nn.Module):
    """``x @ W.T + b`` with W in int8 per output channel (7-bit range: |q| <= 63) and x quantized
    per call to uint8 over its own min..max (full 8 bits): (..., d_in) -> (..., d_out), float32.

    Why 7-bit weights and 8-bit activations, unlike torch.ao's ``quantize_dynamic`` (8-bit
    weights, 7-bit activations: its module passes ``reduce_range=True``): fbgemm's AVX2 kernel
    multiplies uint8 x int8 pairs into saturating int16 sums (vpmaddubsw), so one of the two
    must give up a bit; the weights, quantized per channel, lose less than the activations,
    which are quantized per tensor and carry Gemma's outlier channels. Measured on the default
    model (40 cranfield queries): term overlap with the float vectors 0.88 against 0.81.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()  # (d_out, d_in)
        scale = (weight.abs().amax(dim=1) / 63.0).clamp(min=1e-12).double()  # (d_out,)
        with warnings.catch_warnings():
            # torch 2.13 deprecates quantized-tensor constructors (for torchao, not installed
            # here); the fbgemm/x86 dynamic kernels still ship and are what runs.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            qweight = torch.quantize_per_channel(weight, scale, torch.zeros_like(scale, dtype=torch.long),
                                                 0, torch.qint8)
            bias = None if linear.bias is None else linear.bias.detach().float()
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, reduce_range=False)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 (7-bit) weights"


def quantize_backbone_int8(encoder, *, smooth: bool = True, calibration: Sequence[str] | None = None) -> int:
    """Replace ``encoder.backbone.model``'s ``nn.Linear`` layers by int8 dynamic ones, in place
    (after SmoothQuant equalisation unless ``smooth=False``); returns the layers replaced. CPU
    only; the embedding, norms, attention and SAE stay float32. Raises ConfigError when this torch
    build has no x86/fbgemm int8 engine."""
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("x86", "fbgemm") if e in engines), None)
    if engine is None:
        raise ConfigError(f"query quantization int8 needs torch's x86/fbgemm int8 kernels; this torch build "
                          f"has {engines}: use --query-quantization none")
    torch.backends.quantized.engine = engine  # process-wide; the float path does not use it
    model = encoder.backbone.model
    if smooth:
        texts = list(calibration) if calibration is not None else calibration_texts()
        groups = smooth_(model, activation_maxima(encoder, texts))
        logger.info("int8: smoothed %d linear groups on %d calibration texts", groups, len(texts))
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, Int8DynamicLinear(child))
                replaced += 1
    logger.info("int8: %d backbone linear layers quantized (%s engine); documents are refused", replaced, engine)
    return replaced
