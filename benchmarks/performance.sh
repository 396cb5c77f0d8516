#!/usr/bin/env bash
# Every figure of docs/PERFORMANCE.md, one benchmark after the other, one torch thread each.
#
#   bash benchmarks/performance.sh            # encodes what is missing, then measures
#   SKIP_ENCODE=1 bash benchmarks/performance.sh
#   SKIP_ENCODE=1 MAX_DOCS=4000 bash benchmarks/performance.sh   # a prefix of an unfinished encode
#
# Inputs: ../shared/data/{cranfield,squad-train} (BEIR layout; SPLARE_SHARED_DATA to change).
# The two corpora are encoded once with the default model into benchmarks/results/perf-work/
# (gitignored; an interrupted encode resumes): cranfield 1,398 documents, squad-train 18,891
# paragraphs (hours of CPU on this project's 2 cores, two shards side by side). Timings are
# only meaningful on an otherwise idle machine: each script records the load average it saw.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CLI=${SPLARE_LUCENE:-.venv/bin/splare-lucene}
DATA=${SPLARE_SHARED_DATA:-../shared/data}
WORK=benchmarks/results/perf-work
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$WORK"

if [ -z "${SKIP_ENCODE:-}" ]; then
  "$CLI" encode --corpus "$DATA/cranfield" --allow-empty --output "$WORK/cranfield-default" --part-size 500
  for i in 0 1; do  # two processes, one thread each: both cores busy
    "$CLI" encode --corpus "$DATA/squad-train" --output "$WORK/squad-train-default" \
      --num-shards 2 --shard-id $i --part-size 1000 > "$WORK/enc-squad-$i.log" 2>&1 &
  done
  wait
fi

# Search latency: BM25, Lucene impact (Pyserini's and the toolkit's), Seismic; both corpora.
LIMIT=${MAX_DOCS:+--max-docs $MAX_DOCS}
"$PY" benchmarks/search_latency.py --profile $LIMIT --seismic default qc5 qc10 n1000-qc10
# Query encoding: float32 reference against int8, with the float32 GEMM floor.
"$PY" benchmarks/query_encode.py --squad 100 --doc-vectors "$WORK/cranfield-default"
# Indexing cost against the quantization scale: cranfield and the first 5,000 (or MAX_DOCS)
# squad-train paragraphs (no Seismic build: search_latency.py times those).
"$PY" benchmarks/index_scale.py --max-docs "${MAX_DOCS:-5000}" --repeats 1 --no-seismic
# Encode time against the backbone's forward alone on the same batches.
"$PY" benchmarks/encode_overhead.py --docs 128 --rounds 2
