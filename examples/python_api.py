"""The Python API: encode and index a collection, then search it with Pyserini's
LuceneImpactSearcher and the SPLARE query encoder as a drop-in, offline.

    python examples/python_api.py --output python-api-output     # default model, tatoeba fra-eng
"""

from __future__ import annotations

import argparse
import os
import json
import logging
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the shared data folder (SPLARE_SHARED_DATA overrides ../shared/data, as for the tests)
SHARED_DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_COLLECTION = SHARED_DATA / "tatoeba-xl" / "fra-eng"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model directory, hub id, or 'default'")
    parser.add_argument("--collection", default=str(DEFAULT_COLLECTION), help="a BEIR folder")
    parser.add_argument("--output", default="python-api-output", help="work directory")
    parser.add_argument("--queries", type=int, default=3, help="queries to show with their hits")
    parser.add_argument("--hits", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from splare_lucene import SplareEncoder
    from splare_lucene.corpus import read_queries
    from splare_lucene.pipeline import index_corpus

    # 1. Index: encode the corpus into quantized pseudo-token vectors, then Anserini IndexCollection.
    index_dir = Path(args.output) / "index"
    encoder = SplareEncoder.from_pretrained(args.model)
    counters = index_corpus(encoder, args.collection, index_dir, model_name=args.model, overwrite=True)
    print(f"indexed {counters.get('indexed', 0)} documents into {index_dir}")
    del encoder  # the search below loads the model again, as a separate program would

    # 2. Search. Import SplareQueryEncoder before pyserini: it starts the JVM with options that
    # work on every supported Java (see docs/pipeline.md, "Java").
    from splare_lucene import SplareQueryEncoder
    from pyserini.search.lucene import LuceneImpactSearcher

    # min_idf=-1 keeps query latents present in every document; Pyserini's default (0) drops them.
    searcher = LuceneImpactSearcher(str(index_dir), SplareQueryEncoder.from_pretrained(args.model), min_idf=-1)
    print("LuceneImpactSearcher with SplareQueryEncoder, min_idf=-1")
    queries = list(read_queries(args.collection))
    for query in queries[:args.queries]:
        print(f"\nquery {query.id}: {query.text}")
        for rank, hit in enumerate(searcher.search(query.text, k=args.hits), start=1):
            text = json.loads(searcher.doc(hit.docid).raw())["contents"]  # stored by -storeRaw
            print(f"  {rank}. {hit.docid:<8} score {hit.score:8.0f}  {text[:80]}")

    # 3. Batch search: prime() encodes all queries in batches first (one forward pass per batch);
    # batch_search then runs the Lucene queries in Java threads.
    searcher.query_encoder.prime([q.text for q in queries])
    results = searcher.batch_search([q.text for q in queries], [q.id for q in queries], k=args.hits, threads=2)
    first = queries[0].id
    print(f"\nbatch_search: {len(results)} queries, {sum(len(h) for h in results.values())} hits; "
          f"{first}: " + ", ".join(f"{h.docid} ({h.score:.0f})" for h in results[first]))
    searcher.close()


if __name__ == "__main__":
    main()
