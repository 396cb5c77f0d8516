"""The main job on the built-in default, offline: encode a small corpus with the default SPLARE
model, build a Lucene impact index with Anserini, and answer a few queries with ranked hits.

    python examples/demo.py --output demo-output      # what `make demo` runs

The same steps from the command line:

    splare-lucene index --corpus splare_lucene/assets/demo --index demo-output/index
    splare-lucene search --index demo-output/index --query "why does the ocean have tides"
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import splare_lucene

DEMO_DIR = Path(splare_lucene.__file__).parent / "assets" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--corpus", default=str(DEMO_DIR))
    parser.add_argument("--queries", default=str(DEMO_DIR))
    parser.add_argument("--output", default="demo-output")
    parser.add_argument("--hits", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from splare_lucene import SplareEncoder
    from splare_lucene.corpus import read_queries
    from splare_lucene.pipeline import index_corpus

    start = time.time()
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    print(f"model: {args.model} (backbone {encoder.config.backbone}, layer {encoder.config.layer}, "
          f"{encoder.d_sae} SAE latents)")
    index_dir = Path(args.output) / "index"
    counters = index_corpus(encoder, args.corpus, index_dir, keep_jsonl=Path(args.output) / "jsonl",
                            model_name=args.model, overwrite=True)
    print(f"index: {index_dir} ({counters.get('indexed', 0)} documents)")

    from splare_lucene.search import SplareQueryEncoder, hit_text, open_searcher

    searcher = open_searcher(index_dir, SplareQueryEncoder(encoder))
    for query in read_queries(args.queries):
        print(f"\nquery {query.id}: {query.text}")
        for rank, hit in enumerate(searcher.search(query.text, k=args.hits), start=1):
            text = " ".join(hit_text(searcher, hit.docid).split())
            print(f"  {rank}. {hit.docid:<10} score {hit.score:7.0f}  {text[:90]}")
    print(f"\ndone in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
