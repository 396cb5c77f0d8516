"""The error a bfloat16 SAE head would add, measured on CPU: why the SAE runs in float32.

Same float32 hidden states of the built-in default model (Gemma-3-270m, 8192-latent TopK SAE,
k 32) for the demo corpus and queries, fed to the SAE in float32 and in bfloat16. Prints the
pre-activation error, the share of TopK selections that change, the pooled-value and score
errors and the document top-k overlap. Run: `.venv/bin/python benchmarks/sae_precision.py`
(about 2 minutes on 2 CPU cores). Results: docs/training.md, "Precision".
"""

from __future__ import annotations

import copy
import json

import torch

from splare_lucene.backbone import hidden_states, tokenize
from splare_lucene.encoder import DEFAULT_MODEL_DIR, SplareEncoder
from splare_lucene.pooling import max_pool, top_k


def _texts(name: str) -> list[dict]:
    path = DEFAULT_MODEL_DIR.parent / "demo" / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    docs = [d["title"] + " " + d["text"] for d in _texts("corpus.jsonl")]
    queries = [q["text"] for q in _texts("queries.jsonl")]
    enc = SplareEncoder.from_pretrained("default", device="cpu", dtype="float32")
    sae32 = enc.head
    sae16 = copy.deepcopy(sae32).to(torch.bfloat16)

    def pooled(texts, kind, sae):
        side = enc.config.side(kind)
        ids, attn, mask = tokenize(enc.backbone, texts, side.max_length, "cpu", enc.config.pool_special_tokens)
        with torch.no_grad():
            h = hidden_states(enc.backbone, ids, attn, enc.config.bidirectional)  # (B, T, d) float32
            pre = sae.pre_activation(h).float()[mask]  # (pooled tokens, d_sae)
            p = max_pool(sae.encode, h, mask, sae.config.d_sae).float()  # (B, d_sae)
        return p, pre, top_k(p, side.top_k)

    d32, pre32, dk32 = pooled(docs, "document", sae32)
    d16, pre16, dk16 = pooled(docs, "document", sae16)
    _, _, qk32 = pooled(queries, "query", sae32)
    _, _, qk16 = pooled(queries, "query", sae16)
    k = sae32.config.k
    sel32, sel16 = pre32.topk(k, dim=-1).indices, pre16.topk(k, dim=-1).indices
    changed = sum(len(set(a.tolist()) ^ set(b.tolist())) // 2 for a, b in zip(sel32, sel16)) / (len(sel32) * k)
    rel = ((pre16 - pre32).abs().max(-1).values / pre32.abs().max(-1).values).mean()
    s32, s16 = qk32 @ dk32.t(), qk16 @ dk16.t()  # scores in float32 either way
    nz = d32 > 0
    overlap = [len(set(a.nonzero().flatten().tolist()) & set(b.nonzero().flatten().tolist())) / max(1, int((a > 0).sum()))
               for a, b in zip(dk32, dk16)]
    print(f"SAE {sae32.config.architecture} d_sae={sae32.config.d_sae} k={k}; {len(docs)} docs, "
          f"{len(queries)} queries, {len(pre32)} doc tokens")
    print(f"pre-activation max abs error / max |pre| per token (mean): {rel:.4f}")
    print(f"TopK selections changed per token: {changed:.4f} of k")
    print(f"pooled doc values: mean abs error {(d16 - d32).abs()[nz].mean():.4f} (mean value {d32[nz].mean():.3f}); "
          f"support differs on {((d16 > 0) != nz).float().sum(1).mean():.1f} latents/doc of {nz.sum(1).float().mean():.0f}")
    print(f"doc top-{enc.config.document.top_k} overlap: {sum(overlap) / len(overlap):.4f}")
    print(f"query-doc scores: mean {s32.mean():.2f}, max {s32.max():.2f}; mean abs error "
          f"{(s16 - s32).abs().mean():.3f}, max {(s16 - s32).abs().max():.3f}")
    print(f"top-1 document per query unchanged: {(s32.argmax(1) == s16.argmax(1)).float().mean():.3f}")


if __name__ == "__main__":
    main()
