"""Which latents carry a match, across languages: explanations on the built-in default model, offline.

    python examples/explain_multilingual.py --output explain-output

1. The demo corpus (splare_lucene/assets/demo) is indexed; one question is asked in English,
   French, German and Spanish. For each language: its query latents, the document it pulls up,
   and how much of that document's score comes from latents that all four queries share.
2. The English query against its top document, latent by latent (text, and an HTML report).
3. A cranfield query (../shared/data/cranfield, or $SPLARE_SHARED_DATA/cranfield) against its top
   document among the first --cranfield-docs documents plus the query's judged ones, or in a
   whole-collection index given as --cranfield-index (skipped with a message when the data is
   absent). The subset's index is reused by a rerun with the same documents and model.

Labels: the model's own latent_labels.json when it has one (`splare-lucene label-latents`);
otherwise they are built here, in memory, from the demo corpus (35 documents, seconds).
Writes OUTPUT/explain.txt (everything printed), OUTPUT/explain_en.html, OUTPUT/explain_cranfield.html.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import splare_lucene

DEMO_DIR = Path(splare_lucene.__file__).parent / "assets" / "demo"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))

QUERIES = {  # one question, four languages
    "en": "why does the ocean have tides",
    "fr": "pourquoi l'océan a-t-il des marées",
    "de": "warum hat das Meer Gezeiten",
    "es": "por qué el océano tiene mareas",
}


class Report:
    """Prints and keeps every line, to write them to a file at the end."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line)
        self.lines.append(line)


def _labels(encoder):
    from splare_lucene.corpus import read_documents
    from splare_lucene.explain.labels import build_labels, load_latent_labels

    labels = load_latent_labels(encoder.model_dir, fingerprint=encoder.fingerprint, d_sae=encoder.d_sae)
    if labels is not None:
        return labels, "the model's latent_labels.json"
    labels = build_labels(encoder, read_documents(str(DEMO_DIR)), top_n=5, context_words=3, progress=False,
                          source={"corpus": "demo (in memory)"})
    return labels, "built here from the demo corpus (in memory; `splare-lucene label-latents` stores them)"


def multilingual(encoder, labels, out: Path, say: Report) -> None:
    from splare_lucene.backends import open_index
    from splare_lucene.explain.explain import explain_indexed, write_explanation
    from splare_lucene.explain.render import render_text
    from splare_lucene.pipeline import index_corpus
    from splare_lucene.types import Query

    index_dir = out / "demo-index"
    index_corpus(encoder, str(DEMO_DIR), index_dir, overwrite=True, progress=False)
    index = open_index(index_dir, encoder)
    searched: dict[str, dict[int, int]] = {}
    top: dict[str, tuple[str, float]] = {}
    for lang, text in QUERIES.items():
        q = encoder.quantize(encoder.encode([text], kind="query")[0])
        searched[lang] = dict(zip(q.indices.tolist(), q.weights.tolist()))
        hit = index.search_one(Query(lang, text), k=1)[0]
        top[lang] = (hit.doc_id, hit.score)
    common = set.intersection(*(set(v) for v in searched.values()))
    say("== 1. one question in four languages (demo corpus, 35 documents) ==")
    for lang, text in QUERIES.items():
        doc_id, score = top[lang]
        say(f"{lang}: {text!r}: {len(searched[lang])} latents; top document {doc_id} (score {score:.0f})")
    langs = list(QUERIES)
    say("query latents shared, pair by pair: " + ", ".join(
        f"{a}-{b} {len(set(searched[a]) & set(searched[b]))}" for i, a in enumerate(langs) for b in langs[i + 1:]))
    say(f"latents in all four queries: {len(common)}")
    counts: dict[int, int] = {}
    for v in searched.values():
        for j in v:
            counts[j] = counts.get(j, 0) + 1
    several = [j for j, c in counts.items() if c >= 2]
    say(f"latents in at least two of the four queries: {len(several)} (impact per language, - = absent)")
    for j in sorted(several, key=lambda j: (-counts[j], -sum(searched[x].get(j, 0) for x in langs))):
        impacts = " ".join(f"{x}={searched[x].get(j, '-'):<3}" for x in langs)
        say(f"  f{j:<6} {impacts}  {labels.label(j)[:50]}")
    for lang in langs:
        e = explain_indexed(encoder, index_dir, QUERIES[lang], top[lang][0], labels=labels, max_tokens=3)
        part = sum(s.product for s in e.shared if s.latent in several)
        say(f"{lang} -> {e.doc_id}: score {e.score} (Lucene {e.lucene_score:g}); {len(e.shared)} shared latents, "
            f"{part / e.score:.0%} of the score from latents of at least two languages' queries")
        if lang == "en":
            english = e
    say()
    say("== 2. the English query against its top document ==")
    for line in render_text(english, max_query_latents=10).splitlines():
        say(line)
    write_explanation(english, "html", out / "explain_en.html")
    say(f"(HTML: {out / 'explain_en.html'})")


def cranfield(encoder, labels, out: Path, say: Report, n_docs: int, index_dir: Path | None = None) -> None:
    from splare_lucene.backends import open_index
    from splare_lucene.explain.explain import explain_indexed, write_explanation
    from splare_lucene.explain.render import render_text
    from splare_lucene.pipeline import index_corpus
    from splare_lucene.types import Query

    say()
    say("== 3. a cranfield query against its top document ==")
    root = SHARED / "cranfield"
    if not (root / "corpus.jsonl").is_file():
        say(f"skipped: {root}/corpus.jsonl not found (set SPLARE_SHARED_DATA to the shared data folder)")
        return
    query = json.loads((root / "queries.jsonl").read_text(encoding="utf-8").splitlines()[0])
    judged = set()
    qrels = root / "qrels" / "test.tsv"
    if qrels.is_file():
        for line in qrels.read_text(encoding="utf-8").splitlines()[1:]:
            qid, did, *_ = line.split("\t")
            if qid == query["_id"]:
                judged.add(did)
    if index_dir is not None:  # a whole-collection index built before (by `splare-lucene index`)
        where = f"the whole collection ({index_dir})"
    else:
        lines = (root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
        keep = [ln for i, ln in enumerate(lines) if n_docs == 0 or i < n_docs or json.loads(ln)["_id"] in judged]
        where = f"{len(keep)} documents ({n_docs or 'all'} first + the {len(judged)} judged)"
        subset = out / "cranfield-subset.jsonl"
        content = "\n".join(keep) + "\n"
        index_dir = out / "cranfield-index"
        if _reusable(index_dir, subset, content, encoder):
            say(f"(reusing {index_dir}: same documents, same model)")
        else:
            subset.write_text(content, encoding="utf-8")
            index_corpus(encoder, str(subset), index_dir, overwrite=True, progress=False, allow_empty=True)
    hit = open_index(index_dir, encoder).search_one(Query(query["_id"], query["text"]), k=1)[0]
    e = explain_indexed(encoder, index_dir, query["text"], hit.doc_id, labels=labels, max_tokens=3)
    rel = "judged relevant" if hit.doc_id in judged else "not judged relevant"
    say(f"query {query['_id']} against {where}: top document {hit.doc_id} ({rel})")
    for line in render_text(e, max_query_latents=8).splitlines():
        say(line)
    write_explanation(e, "html", out / "explain_cranfield.html")
    say(f"(HTML: {out / 'explain_cranfield.html'})")


def _reusable(index_dir: Path, subset: Path, content: str, encoder) -> bool:
    """An index built earlier by this example from the same documents with the same model (the
    cranfield documents are long: encoding them is most of the example's time on a CPU)."""
    from splare_lucene.index import read_index_meta

    if not index_dir.is_dir() or not subset.is_file() or subset.read_text(encoding="utf-8") != content:
        return False
    meta = read_index_meta(index_dir) or {}
    return meta.get("model_fingerprint") == encoder.fingerprint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--output", default="explain-output")
    parser.add_argument("--cranfield-docs", type=int, default=300,
                        help="index the first N cranfield documents (+ the query's judged ones); 0: all 1,400")
    parser.add_argument("--cranfield-index", type=Path, default=None,
                        help="a Lucene index of the whole cranfield corpus built with this model (`splare-lucene "
                        "index --corpus ../shared/data/cranfield`): used instead of indexing a subset")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from splare_lucene import SplareEncoder

    start = time.time()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    say = Report()
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    labels, where = _labels(encoder)
    say(f"model: {args.model} ({encoder.d_sae} latents); labels: {where}")
    say()
    multilingual(encoder, labels, out, say)
    cranfield(encoder, labels, out, say, args.cranfield_docs, args.cranfield_index)
    (out / "explain.txt").write_text("\n".join(say.lines) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'explain.txt'}; done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
