"""Search a SPLARE index with Anserini's own command line (SearchCollection), offline.

    python examples/anserini_cli.py --output anserini-cli-output     # default model, tatoeba fra-eng

Steps (each printed as the command you can run yourself):

1. `splare-lucene index`: encode the corpus and build a Lucene impact index with Anserini;
2. `splare-lucene encode-queries --format anserini-tsv`: the queries as pseudo-tokens repeated
   `impact` times, one `qid<TAB>tokens` line each;
3. Anserini's `io.anserini.search.SearchCollection -impact -pretokenized -topicReader TsvString`
   in Java, with no Python encoder in the loop; the run equals `splare-lucene search`'s.

See docs/anserini.md for the same with Pyserini's CLI.
"""

from __future__ import annotations

import argparse
import os
import logging
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the shared data folder (SPLARE_SHARED_DATA overrides ../shared/data, as for the tests)
SHARED_DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_COLLECTION = SHARED_DATA / "tatoeba-xl" / "fra-eng"


def toolkit(*argv: str) -> None:
    """Run a splare-lucene command in this process, printing it first."""
    from splare_lucene.cli.main import main

    print("$ " + shlex.join(["splare-lucene", *argv]), flush=True)
    if main(list(argv)) != 0:
        sys.exit(f"splare-lucene {argv[0]} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model directory, hub id, or 'default'")
    parser.add_argument("--collection", default=str(DEFAULT_COLLECTION), help="a BEIR folder")
    parser.add_argument("--output", default="anserini-cli-output", help="work directory")
    parser.add_argument("--hits", type=int, default=10)
    parser.add_argument("--show", type=int, default=12, help="run lines to print")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    work = Path(args.output)
    index, topics, run = work / "index", work / "topics.tsv", work / "run.trec"
    toolkit("index", "--model", args.model, "--corpus", args.collection, "--index", str(index), "--overwrite")
    toolkit("encode-queries", "--model", args.model, "--queries", args.collection, "--output", str(topics),
            "--format", "anserini-tsv", "--overwrite")

    from splare_lucene.java import java_command

    # No min-idf filter to worry about here: SearchCollection keeps every query term (unlike
    # Pyserini's LuceneImpactSearcher, whose default min_idf=0 drops latents in every document).
    command = java_command("io.anserini.search.SearchCollection", [
        "-index", str(index), "-topics", str(topics), "-topicReader", "TsvString", "-output", str(run),
        "-impact", "-pretokenized", "-hits", str(args.hits), "-threads", "1"])
    print("$ " + shlex.join(command), flush=True)
    run.unlink(missing_ok=True)
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0 or not run.is_file():  # 1.7.1 exits 0 when it cannot read the topics
        sys.exit(f"SearchCollection failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")

    lines = run.read_text().splitlines()
    print(f"\n{run}: {len(lines)} lines (qid Q0 docid rank score tag); the first {args.show}:")
    for line in lines[:args.show]:
        print(line)


if __name__ == "__main__":
    main()
