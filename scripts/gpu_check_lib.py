"""Helpers of ``scripts/gpu_check.sh`` (standard library only: they run on the GPU machine before anything is set up).

    python scripts/gpu_check_lib.py pins                      # the pinned wheels, one requirement a line
    python scripts/gpu_check_lib.py wheels DIR --tree-bytes N # list DIR's wheels, check one version each and the size
    python scripts/gpu_check_lib.py tree-bytes ROOT           # bytes of what the device tool sends (tracked + untracked)
    python scripts/gpu_check_lib.py env --out JSONL [--site DIR]  # versions, CUDA, nvidia-smi, unmet requirements
    python scripts/gpu_check_lib.py record --out JSONL --check NAME --status S ...   # one benchmark's JSON line

Every JSON line of ``gpu_check.jsonl`` has ``check``, ``status`` and ``mode``; a benchmark's line also holds its
``result`` (the benchmark's own JSON, possibly partial after a time cap), ``rc``, ``seconds``, ``cap_s`` and the end
of its log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PINS_FILE = HERE / "gpu_check_wheels.txt"
MIB = 2**20
CARRY_LIMIT_MIB = 64  # the device tool's limit on the working tree + carried paths of one call
WARN_MARGIN_MIB = 8  # below the limit: room for files added after `prepare`
# Distributions whose versions the `env` line reports (import name where it differs).
REPORTED = ["torch", "torchvision", "transformers", "tokenizers", "trl", "peft", "accelerate", "datasets", "pyarrow",
            "huggingface-hub", "safetensors", "numpy", "pillow", "fsspec", "qwen-vl-utils", "simplejpeg", "editjudge",
            "ray", "fastapi"]
IMPORT_NAMES = {"huggingface-hub": "huggingface_hub", "pillow": "PIL", "qwen-vl-utils": "qwen_vl_utils"}


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = PINS_FILE) -> list[str]:
    """The ``name==version`` lines of the pins file, comments and blanks dropped; each must be pinned exactly."""
    pins = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", text):
            raise ValueError(f"{path}:{number}: {text!r} is not of the form name==version")
        pins.append(text)
    names = [normalize(p.split("==")[0]) for p in pins]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: pinned more than once: {', '.join(duplicates)}")
    return pins


def wheel_name_version(filename: str) -> tuple[str, str]:
    """(normalized name, version) of a wheel file name (``name-version(-build)?-py-abi-platform.whl``)."""
    parts = Path(filename).name[: -len(".whl")].split("-")
    if not filename.endswith(".whl") or len(parts) < 5:
        raise ValueError(f"{filename}: not a wheel file name")
    return normalize(parts[0]), parts[1]


def check_wheels(folder: Path, tree_bytes: int = 0, limit_mib: float = CARRY_LIMIT_MIB,
                 pins: list[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Problems with the wheel folder (empty list: ready to carry) and a summary of it.

    Checked: at least one wheel; one version per distribution (two stop the device's whole install); every pin
    present at its version; wheels + the working tree within the carry limit.
    """
    problems: list[str] = []
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        problems.append(f"{folder}: no wheels; run `bash scripts/gpu_check.sh prepare` here first")
    seen: dict[str, list[str]] = {}
    for wheel in wheels:
        try:
            name, version = wheel_name_version(wheel.name)
        except ValueError as error:
            problems.append(str(error))
            continue
        seen.setdefault(name, []).append(version)
    for name, versions in sorted(seen.items()):
        if len(versions) > 1:
            problems.append(f"{name}: {len(versions)} versions ({', '.join(versions)}); keep one (delete the others)")
    for pin in pins or []:
        name, version = pin.split("==")
        if normalize(name) not in seen:
            problems.append(f"{pin}: missing from {folder}")
        elif version not in seen[normalize(name)]:
            problems.append(f"{pin}: {folder} holds {', '.join(seen[normalize(name)])} instead")
    wheel_bytes = sum(w.stat().st_size for w in wheels)
    total = wheel_bytes + tree_bytes
    if total > limit_mib * MIB:
        problems.append(f"wheels {wheel_bytes / MIB:.1f} MiB + working tree {tree_bytes / MIB:.1f} MiB = "
                        f"{total / MIB:.1f} MiB, over the device's {limit_mib:g} MiB carry limit")
    summary = {"wheels": [{"file": w.name, "bytes": w.stat().st_size} for w in wheels], "wheel_bytes": wheel_bytes,
               "tree_bytes": tree_bytes, "total_bytes": total, "limit_bytes": int(limit_mib * MIB)}
    return problems, summary


def tree_bytes(root: Path) -> int:
    """Bytes the device tool sends besides carried paths: tracked and untracked-not-ignored files (+ shared/)."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                                capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but the usual ignored folders
        skip = {".git", ".venv", "venv", ".whl", ".gl", "__pycache__", "build", "dist", "gpu_check_out"}
        listed = [os.fsencode(str(f.relative_to(root))) for f in root.rglob("*")
                  if f.is_file() and not skip & set(f.relative_to(root).parts)]
    total = sum((root / os.fsdecode(p)).stat().st_size for p in listed if p and (root / os.fsdecode(p)).is_file())
    shared = root / "shared"
    if shared.is_dir() and not shared.is_symlink():
        tracked = {os.fsdecode(p) for p in listed}
        total += sum(f.stat().st_size for f in shared.rglob("*")
                     if f.is_file() and str(f.relative_to(root)) not in tracked)
    return total


# ------------------------------------------------------------------------------------------------- env
def _distribution(name: str) -> dict[str, Any]:
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return {"version": None}
    return {"version": dist.version, "location": str(dist.locate_file(""))}


def unmet_requirements(site: Path) -> list[str]:
    """Requirements of the distributions installed in ``site`` that the environment does not meet (needs packaging)."""
    try:
        from importlib import metadata

        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:
        return ["(packaging not importable: requirements not checked)"]
    unmet = []
    for dist in metadata.distributions(path=[str(site)]):
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                installed = metadata.version(canonicalize_name(requirement.name))
            except metadata.PackageNotFoundError:
                installed = None
            if installed is None or not requirement.specifier.contains(installed, prereleases=True):
                unmet.append(f"{dist.metadata['Name']} {dist.version} needs {requirement}, found {installed}")
    return sorted(set(unmet))


def _nvidia_smi() -> dict[str, Any]:
    query = "name,memory.total,driver_version"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"available": False, "error": str(error)}
    return {"available": done.returncode == 0, "gpus": done.stdout.strip().splitlines(), "query": query}


def _torch_info() -> dict[str, Any]:
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - any import failure is what we report
        return {"error": f"{type(error).__name__}: {error}"}
    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        info["bf16"] = torch.cuda.is_bf16_supported()
        info["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def env_record(mode: str, site: Path | None) -> dict[str, Any]:
    packages = {name: _distribution(name) for name in REPORTED}
    record: dict[str, Any] = {"check": "env", "status": "ok", "mode": mode, "time": _now(),
                              "python": sys.version.split()[0], "executable": sys.executable,
                              "packages": packages, "torch": _torch_info(), "nvidia_smi": _nvidia_smi()}
    if site is not None:
        record["site"] = str(site)
        record["unmet_requirements"] = unmet_requirements(site)
        from importlib import metadata

        carried = {normalize(d.metadata["Name"]) for d in metadata.distributions(path=[str(site)])}
        record["carried"] = sorted(carried)
        shadowed = [n for n in REPORTED if normalize(n) in carried and packages[n].get("location")
                    and not packages[n]["location"].startswith(str(site))]
        if shadowed:
            record["status"] = "warning"
            record["not_from_site"] = shadowed  # a carried wheel that another copy on sys.path hides
    return record


# ------------------------------------------------------------------------------------------------- record
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _log_tail(path: Path | None, lines: int = 25) -> str | None:
    if path is None or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def bench_record(args: argparse.Namespace) -> dict[str, Any]:
    result = None
    if args.result and Path(args.result).is_file():
        try:
            result = json.loads(Path(args.result).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            result = {"unreadable": str(error)}
    record: dict[str, Any] = {"check": args.check, "status": args.status, "mode": args.mode, "time": _now(),
                              "rc": args.rc, "seconds": args.seconds, "cap_s": args.cap, "command": args.command,
                              "result": result}
    if args.note:
        record["note"] = args.note
    if args.status != "ok":
        record["log_tail"] = _log_tail(Path(args.log) if args.log else None)
    return record


def append_line(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    pins = sub.add_parser("pins", help="print the pinned wheels")
    pins.add_argument("--file", type=Path, default=PINS_FILE)
    wheels = sub.add_parser("wheels", help="check a wheel folder: one version each, pins present, size")
    wheels.add_argument("folder", type=Path)
    wheels.add_argument("--tree-bytes", type=int, default=0, help="bytes of the working tree that travels too")
    wheels.add_argument("--limit-mib", type=float, default=CARRY_LIMIT_MIB)
    wheels.add_argument("--pins", type=Path, default=None, help="also check these pins are present (a pins file)")
    tree = sub.add_parser("tree-bytes", help="bytes of the working tree the device tool sends")
    tree.add_argument("root", type=Path)
    env = sub.add_parser("env", help="append the environment's JSON line")
    env.add_argument("--out", type=Path, required=True)
    env.add_argument("--mode", default="gpu")
    env.add_argument("--site", type=Path, default=None, help="the folder the carried wheels were installed into")
    record = sub.add_parser("record", help="append one benchmark's JSON line")
    record.add_argument("--out", type=Path, required=True)
    record.add_argument("--check", required=True)
    record.add_argument("--status", required=True, choices=["ok", "failed", "timeout", "not present", "skipped"])
    record.add_argument("--mode", default="gpu")
    record.add_argument("--rc", type=int, default=None)
    record.add_argument("--seconds", type=int, default=None)
    record.add_argument("--cap", type=int, default=None)
    record.add_argument("--result", default=None, help="the benchmark's JSON output")
    record.add_argument("--log", default=None, help="the benchmark's log (its end goes in the line unless ok)")
    record.add_argument("--note", default=None)
    record.add_argument("--command", default=None)
    args = parser.parse_args(argv)

    if args.verb == "pins":
        print("\n".join(read_pins(args.file)))
        return 0
    if args.verb == "tree-bytes":
        print(tree_bytes(args.root))
        return 0
    if args.verb == "wheels":
        problems, summary = check_wheels(args.folder, args.tree_bytes, args.limit_mib,
                                         read_pins(args.pins) if args.pins else None)
        for wheel in summary["wheels"]:
            print(f"  {wheel['bytes'] / MIB:7.2f} MiB  {wheel['file']}")
        print(f"  wheels {summary['wheel_bytes'] / MIB:.2f} MiB + working tree {summary['tree_bytes'] / MIB:.2f} MiB "
              f"= {summary['total_bytes'] / MIB:.2f} MiB of the {summary['limit_bytes'] / MIB:g} MiB carry limit")
        if not problems and summary["total_bytes"] > summary["limit_bytes"] - WARN_MARGIN_MIB * MIB:
            print(f"  warning: less than {WARN_MARGIN_MIB} MiB left under the carry limit")
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if args.verb == "env":
        record_ = env_record(args.mode, args.site)
        append_line(args.out, record_)
        torch_info = record_["torch"]
        print(f"python {record_['python']} ({record_['executable']})")
        for name, info in record_["packages"].items():
            where = info.get("location", "")
            origin = " (carried)" if args.site and where.startswith(str(args.site)) else ""
            print(f"  {name:<16} {info['version'] or '-'}{origin}")
        print(f"torch: {json.dumps(torch_info)}")
        for line in record_.get("unmet_requirements", []):
            print(f"  unmet: {line}")
        for name in record_.get("not_from_site", []):
            print(f"  warning: {name} is imported from outside {args.site}")
        return 0
    append_line(args.out, bench_record(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
