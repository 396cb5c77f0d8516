"""Evaluate a SPLARE model on a BEIR collection end to end, against BM25, with a significance test.

    python examples/beir_end_to_end.py                                  # the default model on cranfield
    python examples/beir_end_to_end.py --collection beir/scifact/test   # by name (files from ir_datasets)
    python examples/beir_end_to_end.py --model my-model --collection path/to/beir-folder

Encodes the corpus, builds a Lucene impact index (reused on the next run with the same model and
quantization), searches the queries, scores nDCG@10, R@100, R@1000 and RR@10 with ir_measures, runs
BM25 (Anserini) on the same queries, tests the nDCG@10 difference (paired t-test), and writes
results.md / .csv / .json / .png under --output. The same from the command line:

    splare-lucene evaluate --model default --collection ../shared/data/cranfield --bm25 --plot
"""

from __future__ import annotations

import argparse
import os
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the shared data folder (SPLARE_SHARED_DATA overrides ../shared/data, as for the tests)
SHARED_DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model directory, hub id, or 'default'")
    parser.add_argument("--collection", default=str(SHARED_DATA / "cranfield"),
                        help="BEIR folder or beir/<name>/<split> (default: ../shared/data/cranfield)")
    parser.add_argument("--output", default="runs/examples/beir", help="output folder")
    parser.add_argument("--k", type=int, default=1000, help="hits per query")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from splare_lucene.errors import SplareError
    from splare_lucene.pipeline import run_evaluation

    try:
        report = run_evaluation(args.model, [args.collection], output=args.output, bm25=True,
                                significance="t-test", k=args.k, threads=args.threads, device="cpu",
                                plot=True, progress=False)
    except SplareError as exc:  # e.g. a named collection whose files are not there: says where to put them
        raise SystemExit(f"error: {exc}") from None
    print(report.markdown, end="")
    print("wrote " + ", ".join(str(p) for p in report.files.values()))


if __name__ == "__main__":
    main()
