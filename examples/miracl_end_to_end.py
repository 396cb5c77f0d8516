"""The MIRACL flow: a SPLARE model on one language's MIRACL dev set, against BM25 with that
language's Lucene analyzer, with a significance test.

    python examples/miracl_end_to_end.py --collection miracl/sw/dev     # needs the MIRACL files
    python examples/miracl_end_to_end.py                                  # offline stand-in (below)

By name, ir_datasets reads MIRACL from ~/.ir_datasets/miracl/ (or $IR_DATASETS_HOME). Where those
files are missing, the run stops at once and names each file to place and where (`--download`
lets ir_datasets fetch them on a machine with network access; see docs/evaluation.md).

MIRACL cannot be downloaded here, so the default is a stand-in with the same shape: a non-English
BEIR-layout folder of the shared data, ../shared/data/tatoeba-xl/deu-eng (German queries, English
sentences), with the German analyzer for BM25 (--language de). It shows the flow, not MIRACL numbers.
The same from the command line:

    splare-lucene evaluate --collection miracl/sw/dev --bm25 --plot
    splare-lucene evaluate --collection ../shared/data/tatoeba-xl/deu-eng --language de --bm25 --plot
"""

from __future__ import annotations

import argparse
import os
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the shared data folder (SPLARE_SHARED_DATA overrides ../shared/data, as for the tests)
SHARED_DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
STAND_IN = SHARED_DATA / "tatoeba-xl" / "deu-eng"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model directory, hub id, or 'default'")
    parser.add_argument("--collection", default=str(STAND_IN),
                        help="miracl/<lang>/dev, or a BEIR folder (default: the tatoeba deu-eng stand-in)")
    parser.add_argument("--language", help="BM25 analyzer language (default: MIRACL's; de for the stand-in)")
    parser.add_argument("--output", default="runs/examples/miracl", help="output folder")
    parser.add_argument("--k", type=int, default=100, help="hits per query (MIRACL reports nDCG@10, R@100)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--download", action="store_true", help="let ir_datasets download missing files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.language is None and Path(args.collection).resolve() == STAND_IN.resolve():
        args.language = "de"

    from splare_lucene.errors import SplareError
    from splare_lucene.pipeline import run_evaluation

    try:
        report = run_evaluation(args.model, [args.collection], output=args.output, language=args.language,
                                measures=["nDCG@10", "R@100"], bm25=True, significance="t-test", k=args.k,
                                threads=args.threads, device="cpu", plot=True, allow_download=args.download,
                                progress=False)
    except SplareError as exc:  # e.g. the MIRACL files are not there: the message says where to put them
        raise SystemExit(f"error: {exc}") from None
    print(report.markdown, end="")
    print("wrote " + ", ".join(str(p) for p in report.files.values()))


if __name__ == "__main__":
    main()
