#!/usr/bin/env bash
# GPU check: what the CPU test suite cannot show, in bfloat16 on CUDA, in under 5 minutes.
#
#   1. the per-family backbone tests (tests/test_backbone_families.py) on CUDA in bfloat16
#      (SPLARE_TEST_DEVICE=cuda SPLARE_TEST_DTYPE=bfloat16, which those tests honour);
#   2. one training step of `train --recipe paper` (KL, 8 negatives, length 128) on the built-in
#      default model (Gemma-3-270m + 8k-latent SAE), micro-batch 4 x 2 accumulation, with
#      --dtype auto, which must resolve to bfloat16; the report must say bfloat16 and a finite loss;
#   3. one encode of the demo corpus with the trained model on CUDA (--dtype auto), compared with
#      the same model encoded in float32 on the CPU (mean top-10 latent overlap, printed).
#
# Usage: benchmarks/gpu_check.sh            (from the repository root; PYTHON=... to pick the
#                                            interpreter, default .venv/bin/python)
# Exit status: 0 all passed; 1 a check failed; 2 torch sees no CUDA GPU (nothing was run).
# The first run on a machine also dequantizes the default backbone once (about a minute, CPU).
set -u -o pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
LIMIT=${GPU_CHECK_STEP_TIMEOUT:-240}  # seconds per step; the whole check should stay under 300
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
SUMMARY=()
FAILED=0

if [ ! -x "$PYTHON" ] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "gpu_check: no Python at $PYTHON; run 'make venv' (with a CUDA torch: make venv" \
         "TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128') or set PYTHON" >&2
    exit 2
fi
"$PYTHON" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    print(f"gpu_check: torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False; "
          f"built for CUDA {torch.version.cuda}). Run this on a machine with an NVIDIA GPU and a CUDA "
          "build of torch: make venv TORCH_SPEC='torch==2.13.0 --index-url "
          "https://download.pytorch.org/whl/cu128'", file=sys.stderr)
    sys.exit(2)
name = torch.cuda.get_device_name(0)
bf16 = torch.cuda.is_bf16_supported()
print(f"gpu_check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 supported: {bf16}")
sys.exit(0 if bf16 else 3)
EOF
status=$?
if [ "$status" -eq 3 ]; then
    echo "gpu_check: this GPU has no bfloat16 support (pre-Ampere): --dtype auto gives float32 there," \
         "so there is nothing to check in bfloat16" >&2
fi
if [ "$status" -ne 0 ]; then
    exit 2
fi

step() {  # step NAME COMMAND...: run with a time limit, record PASS/FAIL and the seconds taken
    local name=$1; shift
    local t0; t0=$(date +%s)
    echo "== $name"
    if timeout "$LIMIT" "$@"; then
        SUMMARY+=("PASS  $name ($(( $(date +%s) - t0 )) s)")
    else
        local rc=$?
        SUMMARY+=("FAIL  $name (exit $rc$([ "$rc" -eq 124 ] && echo ", timed out after ${LIMIT} s"), $(( $(date +%s) - t0 )) s)")
        FAILED=1
    fi
}

# 1. per-family tests on CUDA in bfloat16
if [ -f tests/test_backbone_families.py ]; then
    step "per-family backbone tests (cuda, bfloat16)" \
        env SPLARE_TEST_DEVICE=cuda SPLARE_TEST_DTYPE=bfloat16 \
        "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_backbone_families.py
else
    SUMMARY+=("FAIL  per-family backbone tests: tests/test_backbone_families.py is missing")
    FAILED=1
fi

# 2. one training step, paper recipe, bfloat16 via --dtype auto
"$PYTHON" - "$WORK/train.jsonl" <<'EOF'
import json
import sys

from splare_lucene.encoder import DEFAULT_MODEL_DIR

demo = DEFAULT_MODEL_DIR.parent / "demo"
docs = [json.loads(line) for line in (demo / "corpus.jsonl").read_text().splitlines() if line.strip()]
docs = [d["title"] + " " + d["text"] for d in docs]
queries = [json.loads(line)["text"] for line in (demo / "queries.jsonl").read_text().splitlines() if line.strip()]
with open(sys.argv[1], "w") as f:
    for i in range(8):  # 8 queries: 2 micro-batches of 4, one optimizer step
        negatives = [docs[(i + j) % len(docs)] for j in range(1, 9)]  # the paper's 8 negatives
        f.write(json.dumps({"query": queries[i % len(queries)], "positive": docs[i], "negatives": negatives,
                            "scores": [8.0] + [7.0 - j * 0.5 for j in range(8)]}) + "\n")
EOF
step "train --recipe paper, 1 step (cuda, --dtype auto)" \
    "$PYTHON" -m splare_lucene.cli.main train --recipe paper --model default --data "$WORK/train.jsonl" \
        --output "$WORK/trained" --batch-size 4 --effective-batch-size 8 --max-steps 1 --device cuda --dtype auto
step "train report: bfloat16, float32 loss finite" "$PYTHON" - "$WORK/trained/train_report.json" <<'EOF'
import json
import math
import sys

report = json.load(open(sys.argv[1]))
last = report["history"][-1]
print(f"dtype {report['dtype']}, device {report['device']}, recipe {report['recipe']}, "
      f"effective batch {report['effective_batch_size']}, temperature {report['temperature']} "
      f"({report['temperature_source']}), step 1: {last}")
assert report["dtype"] == "bfloat16", f"--dtype auto gave {report['dtype']} on CUDA"
assert report["config"]["lora_rank"] == 64 and report["config"]["negatives"] == 8
assert math.isfinite(last["loss"]) and last["nnz_q"] > 0 and last["nnz_d"] > 0, last
EOF

# 3. encode on CUDA (auto: bfloat16 backbone, float32 SAE) and compare with float32 on the CPU
step "encode demo corpus (cuda, --dtype auto)" \
    "$PYTHON" -m splare_lucene.cli.main encode --model "$WORK/trained" \
        --corpus splare_lucene/assets/demo --output "$WORK/encoded" --device cuda
step "bf16 cuda vs float32 cpu vectors" "$PYTHON" - "$WORK/trained" <<'EOF'
import json
import sys

from splare_lucene.encoder import DEFAULT_MODEL_DIR, SplareEncoder

demo = DEFAULT_MODEL_DIR.parent / "demo"
texts = [json.loads(line)["text"] for line in (demo / "corpus.jsonl").read_text().splitlines() if line.strip()]
gpu = SplareEncoder.from_pretrained(sys.argv[1], device="cuda").encode(texts)
cpu = SplareEncoder.from_pretrained(sys.argv[1], device="cpu", dtype="float32").encode(texts)
overlap = [len(set(a.indices[:10]) & set(b.indices[:10])) / max(1, min(10, len(b.indices)))
           for a, b in zip(gpu, cpu)]
mean = sum(overlap) / len(overlap)
print(f"mean top-10 latent overlap, cuda bf16 vs cpu float32: {mean:.3f} over {len(texts)} documents")
assert all(v.nnz > 0 for v in gpu), "empty vectors on CUDA"
assert mean > 0.5, "bf16 CUDA vectors disagree with float32 CPU vectors"
EOF

echo
echo "== gpu_check summary ($(( $(date +%s) - START )) s in all)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
