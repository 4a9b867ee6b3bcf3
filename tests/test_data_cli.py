"""The light core imports no torch; the seed's tts_rm.py flags still work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from editjudge.synthetic import write_synthetic_edits

REPO = Path(__file__).resolve().parents[1]


def test_data_and_synthetic_import_no_torch():
    code = (
        "import sys, editjudge.data.prepare, editjudge.data.sources, editjudge.data.images, editjudge.synthetic;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'torchvision')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_seed_script_flags_run_prepare_with_the_seed_defaults(tmp_path):
    data = write_synthetic_edits(tmp_path / "data", n_sources=4, candidates_per_source=3, seed=0)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipe" / "tts_edit" / "tts_rm.py"), "--data_dir", str(data.out_dir),
         "--local_dir", str(out), "--train_split", "0.75", "--balanced_sampling", "--seed", "3", "--workers", "1", "-q"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "prepare_report.json").read_text())
    assert (report["labels"]["median"], report["labels"]["mad"], report["labels"]["estimated_on_train"]) == (0.9, 0.1, False)
    assert report["settings"]["balanced"] and report["settings"]["seed"] == 3 and report["settings"]["train_split"] == 0.75
    rows = pq.read_table(out / "train.parquet").num_rows + pq.read_table(out / "test.parquet").num_rows
    assert rows == report["counts"]["kept"] and "found" in proc.stdout


def test_the_collector_is_frozen_only_when_the_cli_runs_as_the_program(tmp_path):
    """main(argv) (tests, notebooks) leaves the caller's garbage collector as it was; run as the program (argv None),
    main() freezes it on the way out, so that the interpreter's exit does not walk every object again."""
    import gc

    from editjudge.cli import main

    before = gc.get_freeze_count()
    assert main(["synth", str(tmp_path / "a"), "--sources", "1", "--candidates", "1"]) == 0
    assert gc.get_freeze_count() == before
    code = ("import gc, sys\nfrom editjudge.cli import main\n"
            "sys.argv = ['editjudge', 'synth', sys.argv[1], '--sources', '1', '--candidates', '1']\n"
            "rc = main()\nprint(rc, gc.get_freeze_count() > 0)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out[-2:] == ["0", "True"]
