"""Training memory of the SAE head: one forward + backward of the pooling, fused vs dense path.

For each SAE architecture, width (d_sae), backbone width (d_model) and batch shape B x T, builds
an SAE of that real width with random weights (frozen, float32), random hidden states that
require grad, and runs ``loss = (pool(hidden) * g).sum(); loss.backward()`` through

* ``new``: ``SparseAutoencoder.pool`` (``pooling.affine_max_pool``: max on pre-activations,
  sparse backward, an int32 (B, d_sae) argmax kept), and
* ``old``: ``SparseAutoencoder.pool_dense`` (``pooling.max_pool`` over ``encode``: what training
  used before; autograd keeps each token chunk's intermediates).

Measured, each run in a fresh subprocess:

* saved for backward: bytes of the tensors autograd saves during the forward
  (``torch.autograd.graph.saved_tensors_hooks``), each storage counted once, leaving out the
  hidden states input and the frozen SAE weights; also as a multiple of one float32
  (B, T, d_sae) tensor (the issue's target: <= 0.05 at T >= 128);
* peak memory: the child's peak resident set size during forward + backward (Linux VmHWM, reset
  to the current RSS through ``/proc/self/clear_refs`` just before the forward; it sees torch's
  CPU allocations, unlike tracemalloc) minus its RSS (VmRSS) at that point: weights and inputs
  excluded. Where the reset is refused, the peak is the process's lifetime one and the row says so;
* forward and backward wall-clock seconds (one run after a small warm-up; shared machines are
  noisy).

Configurations whose ``old`` path would need more than ``--ram-fraction`` of the available RAM
(estimated before running it) are skipped and listed as such. Results are written after every
run to ``<output>.json`` (rerunning the same command reuses them; ``--fresh`` to redo) and the
markdown table to ``<output>.md``.

    python benchmarks/training_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

GIB = 1 << 30
ARCHITECTURES = ("jumprelu", "relu", "topk")
PATHS = ("old", "new")


def _child(spec: dict) -> dict:
    """One measurement in this (fresh) process; ``spec`` has arch, d_model, d_sae, B, T, path."""
    import torch

    from splare_lucene.sae import build_sae
    from splare_lucene.sae.config import SAEConfig

    torch.set_num_threads(spec["threads"])
    arch, d, V, B, T = spec["arch"], spec["d_model"], spec["d_sae"], spec["B"], spec["T"]
    g = torch.Generator().manual_seed(0)

    def make(d_in: int, d_sae: int):
        # pre-activations ~ N(0, 1) per token; JumpReLU threshold 2 keeps ~2% of latents per token
        config = SAEConfig(architecture=arch, d_in=d_in, d_sae=d_sae,
                           k=spec["k"] if arch == "topk" else None, apply_b_dec_to_input=True)
        tensors = {"W_enc": torch.randn(d_in, d_sae, generator=g).div_(d_in ** 0.5),  # in place: no copy
                   "b_enc": torch.zeros(d_sae), "b_dec": torch.randn(d_in, generator=g) * 0.01}
        if arch == "jumprelu":
            tensors["threshold"] = torch.full((d_sae,), 2.0)
        return build_sae(config, tensors)

    def step(sae, hidden, mask):
        pool = sae.pool if spec["path"] == "new" else sae.pool_dense
        upstream = torch.randn(hidden.shape[0], sae.config.d_sae, generator=g)
        # the loss's constant upstream gradient is the benchmark's, not the head's
        skip = {t.untyped_storage().data_ptr() for t in [hidden, upstream, *sae.parameters()]}
        saved: dict[int, int] = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in skip:
                saved[ptr] = t.untyped_storage().nbytes()
            return t

        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = (pool(hidden, mask) * upstream).sum()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        return sum(saved.values()), t1 - t0, t2 - t1

    warm = make(64, 512)  # thread pools, MKL and the sparse kernels started outside the measure
    step(warm, torch.randn(2, 16, 64, requires_grad=True), torch.ones(2, 16, dtype=torch.bool))
    del warm

    sae = make(d, V)
    hidden = torch.randn(B, T, d, generator=g).requires_grad_(True)  # (B, T, d_model)
    mask = torch.ones(B, T, dtype=torch.bool)
    exact = _reset_peak_rss()
    rss_before = _proc_kib("/proc/self/status", "VmRSS:") * 1024
    saved, fwd, bwd = step(sae, hidden, mask)
    peak = _peak_rss()
    one = B * T * V * 4  # one float32 (B, T, d_sae) tensor
    return {**spec, "saved_bytes": saved, "saved_x": saved / one, "peak_exact": exact,
            "peak_delta_bytes": max(0, peak - rss_before), "forward_s": fwd, "backward_s": bwd}


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux: ``/proc/self/clear_refs`` "5").
    Without it the peak would include the set-up (random weights), so it is reported as inexact."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_kib(path: str, field: str) -> int:
    """A "<field> <n> kB" line of a /proc file, in KiB (Linux; psutil is not a dependency)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    raise SystemExit(f"cannot read {field} from {path}: this benchmark measures memory through "
                     "Linux's /proc; run it on Linux")


def _peak_rss() -> int:
    """Peak RSS in bytes: VmHWM (resettable by ``_reset_peak_rss``)."""
    return _proc_kib("/proc/self/status", "VmHWM:") * 1024


def _old_path_estimate(d: int, V: int, B: int, T: int) -> int:
    """Bytes the dense path needs at its peak: weights, ~3.3 float32 (B, T, V) tensors kept for
    backward (the issue's measure for JumpReLU), the hidden states and their gradient."""
    return 4 * V * d + int(3.5 * 4 * B * T * V) + 3 * 4 * B * T * d


def _key(spec: dict) -> str:
    return f"{spec['arch']}/{spec['d_model']}/{spec['d_sae']}/{spec['B']}x{spec['T']}/{spec['path']}"


def _summary(rows: list[dict]) -> str:
    """A few sentences computed from the rows: the target check and the old/new ratios."""
    new = [r for r in rows if r["path"] == "new" and r["T"] >= 128]
    old = {_key({**r, "path": "new"}): r for r in rows if r["path"] == "old"}
    if not new:
        return ""
    worst = max(r["saved_x"] for r in new)
    lines = [f"- New path: saved for backward at most {worst:.4f} x one float32 (B, T, d_sae) tensor "
             f"at T >= 128 (target <= 0.05: {'met' if worst <= 0.05 else 'NOT met'}), whatever d_sae."]
    pairs = [(old[_key(r)], r) for r in new if _key(r) in old]
    if pairs:
        lo, hi = min(o["saved_x"] for o, _ in pairs), max(o["saved_x"] for o, _ in pairs)
        peak = max(pairs, key=lambda p: p[0]["peak_delta_bytes"])
        lines.append(f"- Old path: {lo:.2f}-{hi:.2f} x. Largest measured peak: {peak[0]['arch']} "
                     f"{peak[0]['d_sae']:,} latents, {peak[0]['B']} x {peak[0]['T']}: "
                     f"+{peak[0]['peak_delta_bytes'] / GIB:.2f} GiB old vs "
                     f"+{peak[1]['peak_delta_bytes'] / GIB:.2f} GiB new.")
        speed = [(o["forward_s"] + o["backward_s"]) / (n["forward_s"] + n["backward_s"]) for o, n in pairs]
        lines.append(f"- Forward + backward time, old / new: {min(speed):.1f}-{max(speed):.1f} x "
                     "(the backward is where the new path saves time).")
    return "\n".join(lines)


def _merge(rows: list[dict], done: dict[str, dict]) -> list[dict]:
    keys = {_key(r) for r in rows}
    return rows + [r for k, r in done.items() if k not in keys]


def _table(rows: list[dict], skipped: dict[str, str]) -> str:
    head = ("| SAE | d_model | d_sae | B x T | path | saved for backward | x one fp32 (B,T,d_sae) "
            "| peak RSS increase | forward s | backward s |\n|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['d_model']} | {r['d_sae']:,} | {r['B']} x {r['T']} | {r['path']} "
                     f"| {r['saved_bytes'] / (1 << 20):,.1f} MiB | {r['saved_x']:.4f} "
                     f"| {r['peak_delta_bytes'] / GIB:.2f} GiB{'' if r.get('peak_exact') else ' (lifetime peak)'} | {r['forward_s']:.1f} | {r['backward_s']:.1f} |")
    if skipped:
        lines.append("")
        lines.append("Skipped (estimated peak above `--ram-fraction` of the available RAM): "
                     + "; ".join(f"{k} ({why})" for k, why in skipped.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=["jumprelu", "topk"], choices=ARCHITECTURES)
    parser.add_argument("--d-sae", nargs="+", type=int, default=[16384, 65536, 131072])
    parser.add_argument("--d-model", nargs="+", type=int, default=[2048, 4096])
    parser.add_argument("--shapes", nargs="+", default=["8x128", "32x128"], help="B x T, e.g. 8x128")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--k", type=int, default=64, help="TopK SAEs' k (default 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ram-fraction", type=float, default=0.4,
                        help="skip a run whose estimated peak exceeds this share of the available RAM")
    parser.add_argument("--output", type=Path, default=None,
                        help="write <output>.json and <output>.md (the committed table: "
                        "benchmarks/results/training_memory); default: print the table only")
    parser.add_argument("--fresh", action="store_true", help="ignore results already in <output>.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    if args.output is None:  # a scratch place: the committed table is only written on request
        import tempfile

        args.output = Path(tempfile.mkdtemp(prefix="training-memory-")) / "training_memory"
        print(f"writing to {args.output}.json/.md (pass --output to choose)", flush=True)
    command = "python benchmarks/training_memory.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    json_path, md_path = args.output.with_suffix(".json"), args.output.with_suffix(".md")
    done, commands, skipped_before = {}, [], {}
    if json_path.is_file() and not args.fresh:
        previous = json.loads(json_path.read_text())
        done = {_key(r): r for r in previous["rows"]}
        commands = previous.get("commands", [])
        skipped_before = dict(previous.get("skipped", {}))
    if command not in commands:
        commands.append(command)
    rows, skipped = [], {}  # key -> why
    for arch in args.architectures:
        for d in args.d_model:
            for V in args.d_sae:
                for shape in args.shapes:
                    B, T = (int(v) for v in shape.lower().split("x"))
                    for path in args.paths:
                        spec = {"arch": arch, "d_model": d, "d_sae": V, "B": B, "T": T, "path": path,
                                "k": args.k, "threads": args.threads}
                        key = _key(spec)
                        if key in done:
                            rows.append(done[key])
                            continue
                        available = _proc_kib("/proc/meminfo", "MemAvailable:") * 1024
                        need = _old_path_estimate(d, V, B, T) if path == "old" else 4 * V * d * 2
                        if need > args.ram_fraction * available:
                            skipped[key] = (f"needs ~{need / GIB:.1f} GiB, {args.ram_fraction:g} x "
                                            f"available = {args.ram_fraction * available / GIB:.1f} GiB")
                            print(f"skip {key} ({skipped[key]})", flush=True)
                            continue
                        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
                        if out.returncode != 0:
                            raise SystemExit(f"{key} failed:\n{out.stderr[-3000:]}")
                        row = json.loads(out.stdout.strip().splitlines()[-1])
                        rows.append(row)
                        print(f"{key}: saved {row['saved_x']:.4f}x, peak +{row['peak_delta_bytes'] / GIB:.2f} GiB, "
                              f"{row['forward_s']:.1f} s + {row['backward_s']:.1f} s", flush=True)
                        args.output.parent.mkdir(parents=True, exist_ok=True)
                        json_path.write_text(json.dumps({"commands": commands, "rows": _merge(rows, done),
                                                         "skipped": {**skipped_before, **skipped}},
                                                        indent=1) + "\n")
    import torch

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
               f"({args.threads} threads), {_proc_kib('/proc/meminfo', 'MemTotal:') * 1024 / GIB:.0f} GiB RAM, "
               f"torch {torch.__version__}, float32")
    rows = _merge(rows, done)  # rows of earlier commands outside this grid are kept
    measured = {_key(r) for r in rows}
    skipped = {k: v for k, v in {**skipped_before, **skipped}.items() if k not in measured}
    table = _table(rows, skipped)
    summary = _summary(rows)
    print(table)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(
        "# SAE-head training memory: fused pooling (new) vs dense pooling (old)\n\n"
        "Commands (rows of earlier ones are reused by later ones, see `--fresh`):\n\n"
        + "".join(f"    {c}\n" for c in commands) + f"\nMachine: {machine}; {time.strftime('%Y-%m-%d', time.gmtime())}.\n\n"
        "One forward + backward of the SAE pooling (random frozen weights of the real width, hidden "
        "states with grad, every token pooled). *Saved for backward*: tensors autograd keeps "
        "(saved_tensors_hooks), hidden states and SAE weights excluded. *Peak RSS increase*: "
        "the process's peak RSS during forward + backward (Linux VmHWM, reset just before the "
        "forward) minus its RSS then. Times are wall-clock on a machine shared with other jobs "
        "(noisy). The old path's gradient flows through every chunk's intermediates; the new "
        "path's backward is one sparse product. Random SAEs: pre-activations ~ N(0, 1), JumpReLU "
        f"threshold 2.0, TopK k = {args.k}, b_dec subtracted from the input.\n\n" + summary + "\n\n" + table + "\n")
    json_path.write_text(json.dumps({"commands": commands, "machine": machine, "rows": rows,
                                     "skipped": skipped}, indent=1) + "\n")


if __name__ == "__main__":
    main()
