"""Benchmark `editjudge prepare` against what the seed's tts_rm.py did, on the same data, cores and run.

Baseline (the seed's approach): HF ``datasets`` ``.map`` over the samples, both images resized to the edited
image's size // 2 with LANCZOS, PIL images stored (``datasets`` encodes them as PNG) in parquet, one process.
Ours: ``editjudge prepare`` with its defaults (token-budget sizing, reduced-scale JPEG decode, JPEG bytes,
``--workers`` = all cores), again with ``--workers 1`` (per-core comparison), and at the seed's own resolution
(``--max-image-tokens 324``: the seed's 512 px images become 504 x 504 = 324 tokens in the processor).

Data: photo-like 1024x1024 JPEGs from ``editjudge.synthetic`` (``--sources`` x ``--candidates`` samples). Peak RSS
(the whole process tree, sampled every 20 ms) is measured for ours at several N; N larger than the generated data
is reached with a JSONL manifest that lists the samples several times (distinct ids, same files), so memory is
measured at N samples without generating N distinct photos.

Each run is a fresh subprocess. Ratios are taken within one run of this script; with ``--repeat N`` every side runs
N times, interleaved (baseline, ours, baseline, ours, …), and its fastest run counts, so a burst of load from other
jobs on a shared machine lands on one try instead of on one side. CPU seconds (user + system of the whole process
tree) are reported beside wall time: their ratio does not depend on how busy the machine is. Defaults take a few
minutes:

    python benchmarks/bench_prepare.py                       # 50 sources x 4; baseline on 40, ours on 200
    python benchmarks/bench_prepare.py --sources 250 --rss-ns 1000,2500,10000 --baseline-n 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent

# The seed's approach, as a standalone script run in its own process (argv: data_dir out_dir limit).
BASELINE = r'''
import json, os, sys
import datasets
from PIL import Image

data_dir, out_dir, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
samples = []
for root, _, files in sorted(os.walk(data_dir)):
    for name in sorted(files):
        if name.endswith("_input.jpg"):
            stem = os.path.join(root, name[: -len("_input.jpg")])
            meta = json.load(open(stem + "_meta.json"))
            score = json.load(open(stem + "_score.json"))["score"]
            samples.append({"input": stem + "_input.jpg", "output": stem + "_output.jpg",
                            "instruction": meta["instruction"], "score": float(score)})
samples = samples[:limit]
median, mad = 0.9, 0.1

def process(example, idx):
    source = Image.open(example["input"]).convert("RGB")
    edited = Image.open(example["output"]).convert("RGB")
    size = (edited.width // 2, edited.height // 2)
    source, edited = source.resize(size, Image.LANCZOS), edited.resize(size, Image.LANCZOS)
    label = int(min(max((example["score"] - median) / mad * 4.5 + 4.5, 0), 9))
    return {
        "data_source": "tts_edit_score",
        "prompt": [{"role": "system", "content": "think first"},
                   {"role": "user", "content": example["instruction"] + " input image: <image> edited image: <image>"}],
        "images": [source, edited],
        "ability": "image_editing_evaluation",
        "reward_model": {"style": "rule", "ground_truth": str(label)},
        "extra_info": {"index": idx, "instruction": example["instruction"], "score": example["score"]},
    }

dataset = datasets.Dataset.from_list(samples)
dataset = dataset.map(process, with_indices=True, remove_columns=dataset.column_names)
n_train = int(len(dataset) * 0.9)
dataset.select(range(n_train)).to_parquet(os.path.join(out_dir, "train.parquet"))
dataset.select(range(n_train, len(dataset))).to_parquet(os.path.join(out_dir, "test.parquet"))
'''


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time, CPU time (user + system, the whole process tree) and peak RSS (sum over the tree) of a command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                procs = [proc] + proc.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    done.set()
    thread.join()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak / 2**20}


def best_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """The fastest of repeated runs (wall time), with the least CPU time and the largest peak RSS seen."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best.update(cpu_seconds=min(r["cpu_seconds"] for r in runs), peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                tries=len(runs))
    return best


def parquet_bytes(folder: Path) -> int:
    return sum((folder / name).stat().st_size for name in ("train.parquet", "test.parquet"))


def write_manifest(data_dir: Path, n: int, path: Path) -> Path:
    """A JSONL manifest of ``n`` rows cycling over the generated samples (distinct ids; each repeat's instruction
    says which pass it is, so that prepare does not reject the repeats as ``duplicate`` edits)."""
    from editjudge.data.sources import EditRecord, read_sources

    records = [r for r in read_sources(data_dir) if isinstance(r, EditRecord)]
    with path.open("w") as handle:
        for i in range(n):
            r = records[i % len(records)]
            handle.write(json.dumps({"id": f"r{i}", "source": r.source_path, "edited": r.edited_path,
                                     "instruction": r.instruction + (f" (pass {i // len(records)})" if i >= len(records) else ""),
                                     "score": r.score}) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=50, help="source images to generate")
    parser.add_argument("--candidates", type=int, default=4, help="candidate edits per source")
    parser.add_argument("--size", type=int, default=1024, help="image side")
    parser.add_argument("--baseline-n", type=int, default=40, help="samples for the (slow) baseline")
    parser.add_argument("--ours-n", type=int, default=None, help="samples for ours (default: all generated)")
    parser.add_argument("--rss-ns", default="200,800,2000", help="N values for ours' peak RSS (comma-separated)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers for ours")
    parser.add_argument("--work-dir", default=None, help="where to put data and outputs (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side, interleaved; the fastest counts")
    parser.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                        help="only these of ours (default_wN, default_w1, seed_resolution_wN)")
    args = parser.parse_args()

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_prepare_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HOME=str(work / "hf"), HF_DATASETS_CACHE=str(work / "hf" / "datasets"),
               TOKENIZERS_PARALLELISM="false")
    data = work / "data"
    if not data.exists():
        print(f"generating {args.sources} x {args.candidates} photo-like {args.size}px samples in {data} …", flush=True)
        subprocess.run([sys.executable, "-m", "editjudge.cli", "synth", str(data), "--sources", str(args.sources),
                        "--candidates", str(args.candidates), "--size", str(args.size), "--photo-like",
                        "--workers", str(os.cpu_count() or 1)], check=True, stdout=subprocess.DEVNULL)
    total = args.sources * args.candidates
    results: dict[str, object] = {"cpu_count": os.cpu_count(), "workers": args.workers, "samples_generated": total,
                                  "image_size": args.size, "candidates_per_source": args.candidates}

    # The baseline is slow: it runs on the first --baseline-n samples; ours runs on --ours-n samples (default: all
    # generated). Throughput is samples/s of the whole command (start-up included); bytes are per sample.
    n_base = min(args.baseline_n, total)
    n_ours = min(args.ours_n or total, total)
    base_out = work / "baseline"
    base_out.mkdir(exist_ok=True)
    manifest = write_manifest(data, n_ours, work / f"ours_{n_ours}.jsonl")
    ours_cmd = lambda src, out, workers, *extra: [sys.executable, "-m", "editjudge.cli", "prepare", str(src), "-o",
                                                  str(out), "--workers", str(workers), "-q", "--score-median", "0.9",
                                                  "--score-mad", "0.1", "--force", *extra]
    configs = {
        f"default_w{args.workers}": (args.workers, ()),
        "default_w1": (1, ()),
        # The seed's own resolution: 1024 // 2 = 512 px, which the processor turns into 504 x 504 = 324 tokens.
        f"seed_resolution_w{args.workers}": (args.workers, ("--max-image-tokens", "324")),
    }
    if args.configs:
        configs = {k: v for k, v in configs.items() if k in args.configs}
    base_runs: list[dict[str, float]] = []
    our_runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    reports: dict[str, dict] = {}
    for attempt in range(max(1, args.repeat)):
        print(f"[{attempt + 1}/{args.repeat}] baseline (seed approach, 1 process) on {n_base} samples …", flush=True)
        base_runs.append(run_measured([sys.executable, "-c", BASELINE, str(data), str(base_out), str(n_base)], env))
        for name, (workers, extra) in configs.items():
            out = work / f"ours_{name}"
            print(f"[{attempt + 1}/{args.repeat}] ours {name} on {n_ours} samples …", flush=True)
            our_runs[name].append(run_measured(ours_cmd(manifest, out, workers, *extra), env))
            reports[name] = json.loads((out / "prepare_report.json").read_text())
    base = best_of(base_runs)
    base.update(n=n_base, samples_per_s=n_base / base["seconds"], bytes_per_sample=parquet_bytes(base_out) / n_base,
                cpu_s_per_sample=base["cpu_seconds"] / n_base)
    runs: dict[str, dict[str, float]] = {}
    for name, tries in our_runs.items():
        r = best_of(tries)
        out = work / f"ours_{name}"
        r.update(n=n_ours, samples_per_s=n_ours / r["seconds"], bytes_per_sample=parquet_bytes(out) / n_ours,
                 cpu_s_per_sample=r["cpu_seconds"] / n_ours,
                 tokens_per_image_mean=reports[name]["images"]["tokens_per_image"]["mean"])
        runs[name] = r
    results["baseline"] = base
    results["ours"] = runs
    results["ratios"] = {
        name: {"samples_per_s": r["samples_per_s"] / base["samples_per_s"],
               "cpu_per_sample": base["cpu_s_per_sample"] / r["cpu_s_per_sample"],
               "bytes_per_sample": r["bytes_per_sample"] / base["bytes_per_sample"]}
        for name, r in runs.items()
    }

    rss: list[dict[str, float]] = []
    for n_rss in (int(x) for x in args.rss_ns.split(",") if x.strip()):
        manifest = write_manifest(data, n_rss, work / f"rss_{n_rss}.jsonl")
        out = work / f"ours_rss_{n_rss}"
        print(f"ours (--workers {args.workers}) on N={n_rss} for peak RSS …", flush=True)
        r = run_measured(ours_cmd(manifest, out, args.workers), env)
        rss.append({"n": n_rss, "peak_rss_mb": r["peak_rss_mb"], "samples_per_s": n_rss / r["seconds"],
                    "seconds": r["seconds"]})
    results["ours_rss_by_n"] = rss

    print(json.dumps(results, indent=2))
    print(f"\nbaseline: {base['samples_per_s']:.2f} samples/s on {n_base} samples, "
          f"{base['bytes_per_sample'] / 1e3:.0f} kB/sample, peak RSS {base['peak_rss_mb']:.0f} MB "
          f"(best of {base['tries']})")
    for name, r in runs.items():
        ratio = results["ratios"][name]
        print(f"ours {name:24s}: {r['samples_per_s']:6.1f} samples/s on {n_ours} = {ratio['samples_per_s']:5.1f}x "
              f"(CPU per sample {ratio['cpu_per_sample']:.1f}x less); "
              f"{r['bytes_per_sample'] / 1e3:5.0f} kB/sample = 1/{1 / ratio['bytes_per_sample']:.1f}; "
              f"{r['tokens_per_image_mean']:.0f} tokens/image")
    print("ours peak RSS by N: " + ", ".join(f"N={r['n']}: {r['peak_rss_mb']:.0f} MB" for r in rss))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
