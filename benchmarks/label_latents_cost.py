"""What `splare-lucene label-latents --corpus` costs: seconds (wall and process CPU) per document,
peak resident memory and the labels file's size, on the first N documents of a corpus, with an
extrapolation to a larger --max-docs. The model is copied to a temporary directory first, so the
real model directory is never written.

    python benchmarks/label_latents_cost.py --max-docs 32 --target-docs 2000     # ~minutes on a CPU
    python benchmarks/label_latents_cost.py --quick                               # 8 documents

Writes results/label_latents_cost.json and .md (the command included).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _results import write_results  # noqa: E402

REPO = HERE.parent
SHARED = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--corpus", default=str(SHARED / "squad-train"))
    p.add_argument("--max-docs", type=int, default=32)
    p.add_argument("--target-docs", type=int, default=2000, help="extrapolate to this --max-docs")
    p.add_argument("--top-n", type=int, default=8)
    p.add_argument("--context-words", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="8 documents")
    p.add_argument("--out", default=str(HERE / "results" / "label_latents_cost"))
    args = p.parse_args()
    if args.quick:
        args.max_docs = 8

    from splare_lucene.corpus import read_documents
    from splare_lucene.encoder import SplareEncoder, resolve_model_dir
    from splare_lucene.explain.labels import build_labels, save_latent_labels

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        shutil.copytree(resolve_model_dir(args.model), model_dir)
        (model_dir / "latent_labels.json").unlink(missing_ok=True)
        t0 = time.perf_counter()
        encoder = SplareEncoder.from_pretrained(model_dir, device="cpu", dtype="float32")
        load_s = time.perf_counter() - t0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        labels = build_labels(encoder, read_documents(args.corpus), top_n=args.top_n,
                              context_words=args.context_words, batch_size=args.batch_size,
                              max_docs=args.max_docs, progress=False, source={"corpus": args.corpus})
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        path = save_latent_labels(labels, model_dir)
        size = path.stat().st_size
    docs = labels.sources[0]["documents"]
    tokens = labels.sources[0]["tokens"]
    labelled = len(labels.latents)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_doc_cpu, per_doc_wall = cpu / docs, wall / docs
    results = {
        "command": " ".join([f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] * ("OMP_NUM_THREADS" in os.environ)
                            + ["python", *sys.argv]), "model": args.model, "corpus": args.corpus,
        "documents": docs, "tokens": tokens, "d_sae": labels.d_sae, "latents_labelled": labelled,
        "top_n": args.top_n, "context_words": args.context_words, "batch_size": args.batch_size,
        "load_s": round(load_s, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "wall_s_per_doc": round(per_doc_wall, 3), "cpu_s_per_doc": round(per_doc_cpu, 3),
        "peak_rss_mib": round(peak_mib), "labels_bytes": size,
        "target_docs": args.target_docs, "target_cpu_s": round(per_doc_cpu * args.target_docs),
        "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None, "load_average": os.getloadavg(),
    }
    text = (f"# label-latents cost\n\n`{results['command']}`\n\n"
            f"| documents | tokens | latents labelled | wall s/doc | CPU s/doc | peak RSS MiB | labels file |\n"
            f"|---|---|---|---|---|---|---|\n"
            f"| {docs} | {tokens} | {labelled} of {labels.d_sae} | {per_doc_wall:.3f} | {per_doc_cpu:.3f} | "
            f"{peak_mib:.0f} | {size / 1e6:.2f} MB |\n\n"
            f"Model load {load_s:.1f} s (not counted). Extrapolated to {args.target_docs} documents: about "
            f"{per_doc_cpu * args.target_docs / 60:.0f} CPU minutes (process CPU time, which contention from "
            f"other processes perturbs less than wall time). Load average at the end: "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}: figures from a busy machine are provisional.\n")
    write_results(args.out, results, text)


if __name__ == "__main__":
    main()
