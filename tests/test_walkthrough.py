"""The README's CPU walk-through, run as written: prepare -> train (TRL, tiny) -> eval -> export -> score ->
best-of-n -> serve, from a folder that is not the repository's, in a shell where the venv is active.

The block between ``<!-- walkthrough:start -->`` and ``<!-- walkthrough:end -->`` in README.md is the script: an edit
to the README is what this test runs. It runs after ``source <venv>/bin/activate`` (the README's set-up step; the venv
of the interpreter running the tests) in a new empty folder outside the repository, under ``bash -euo pipefail`` so
that any failing command fails the test. The only change made to it is the port (a free one, so that it runs beside
other work). Whatever the block leaves running (``serve`` and its Ray) is ended with its process group.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANG = 1800  # seconds: about 3 minutes on 2 busy cores; only a hang reaches this


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.DOTALL)
    assert match, "README.md lost its walk-through block"
    return match.group(1)


def documented_commands(text: str) -> list[list[str]]:
    """The ``editjudge …`` command lines of a Markdown text's bash blocks, as argument lists (continuations joined,
    comments, ``VAR=value`` prefixes and ``&&`` / ``&`` / ``;`` separators handled); placeholders (``…``) skipped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            if not re.search(r"(?:^|\s)(?:\S*/)?editjudge\s", line.split("#")[0]):
                continue
            lex = shlex.shlex(line, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            command: list[str] = []
            for word in [*lex, "&&"]:
                if word not in {"&&", "&", ";", "|", "||"}:
                    command.append(word)
                    continue
                while command and re.match(r"^[A-Z_]+=", command[0]):
                    command.pop(0)
                if command and command[0].endswith("editjudge") and not {"…", "..."} & set(command):
                    commands.append(command[1:])
                command = []
    return commands


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])
def test_every_documented_command_parses(doc: str) -> None:
    """Each ``editjudge`` line of the README and docs is accepted by the verb's parser (a renamed or removed flag
    fails here, in the default lane; the walk-through below runs the README's CPU block for real)."""
    from editjudge.cli import build_parser

    commands = documented_commands((ROOT / doc).read_text(encoding="utf-8"))
    if doc == "README.md":
        assert len(commands) >= 20 and ["demo"] in commands
    bad = []
    for argv in commands:
        try:
            build_parser(argv[0]).parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                bad.append(" ".join(argv))
    assert not bad, f"{doc}: commands the CLI refuses (its message above):\n" + "\n".join(bad)


def test_documented_commands_are_read_as_a_shell_reads_them() -> None:
    text = """```bash
WANDB_MODE=offline editjudge train --model $M \\
    --max-steps 2   # drop it for the recipe's 60 steps
editjudge serve --port 8000 & curl -sf x && kill %1
python -c "from editjudge.client import edit_reward_fn"
editjudge score … --ray
```"""
    assert documented_commands(text) == [["train", "--model", "$M", "--max-steps", "2"], ["serve", "--port", "8000"]]
    from editjudge.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser("score").parse_args(["score", "--model", "m", "--no-such-flag"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(script: str, cwd: Path, env: dict[str, str], logs: Path) -> tuple[int, str, str]:
    """Run ``script`` in bash in its own process group; when bash ends (or hangs), end the group: a step that fails
    after ``serve … &`` leaves serve running. Output goes to files, which a background job cannot hold open."""
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, stdout=out,
                                   stderr=err, start_new_session=True)
        try:
            returncode = process.wait(timeout=HANG)
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(5)
    return returncode, (logs / "stdout").read_text(), (logs / "stderr").read_text()


@pytest.mark.slow  # about 2.5 CPU-minutes: the whole path, with a real serve and Ray
def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    block = readme_block()
    assert "editjudge train --engine trl" in block and "editjudge serve" in block  # the whole path is in it
    port = _free_port()
    activate = Path(sys.prefix) / "bin" / "activate"
    assert activate.is_file(), f"the tests run outside a venv ({sys.prefix}); the README's set-up makes .venv"
    script = f"source {shlex.quote(str(activate))}\n" + block.replace("8000", str(port))
    work = tmp_path / "somewhere" / "else"
    work.mkdir(parents=True)
    assert not work.resolve().is_relative_to(ROOT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(ROOT / "src")}  # this checkout's code (CI's editable install is this checkout anyway);
    # RAY_TMPDIR stays conftest's short one (Ray's socket paths are limited); Ray's auth mode is the user's default
    env.pop("RAY_AUTH_MODE", None)
    env.pop("VIRTUAL_ENV", None)
    returncode, stdout, stderr = _run(script, work, env, tmp_path)
    log = stdout + stderr
    assert returncode == 0, log[-6000:]

    # every verb left what it promises, and the paths it recorded resolve from anywhere
    report = json.loads((work / "data" / "prepare_report.json").read_text())
    assert report["settings"]["processor"] == str(work / "tiny")
    adapter = json.loads((work / "runs" / "trl" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(work / "tiny")
    assert json.loads((work / "runs" / "trl" / "trl_settings.json").read_text())["output_dir"] == str(work / "runs" / "trl")
    assert re.search(r"steps: 40 warm-start \+ 60 GRPO steps .*\ntime: about .* estimated from one measured GRPO step",
                     stdout)
    assert "[grpo] step 2/2: reward" in stdout  # step lines say step N/max ...
    assert not re.search(r"(^|\r) *\d+%\|", stderr)  # ... and the trainer's bar (no description) is off in a log file
    assert "trl-adapter: n=" in stdout and (work / "eval" / "report.md").is_file()
    assert (work / "judge-merged" / "config.json").is_file()
    predictions = [json.loads(line) for line in (work / "preds.jsonl").read_text().splitlines()]
    assert predictions and all(not (p["error"] or "").startswith("input_error") for p in predictions)
    assert re.search(r"best-of-n: 16 ranking\(s\) of 64 candidate\(s\)", stdout)
    assert '"status":"ok"' in stdout  # healthz answered
    reward = re.search(r"^\[(-?[\d.]+)\]$", stdout, re.MULTILINE)
    assert reward and 0 <= float(reward.group(1)) <= 9, stdout[-2000:]  # a real reward from the service
    assert "Token authentication is enabled" not in log  # no Ray warning at serve start
    assert "editjudge serve: stopped" in log and "Traceback" not in log  # `kill %1` ended serve the graceful way
