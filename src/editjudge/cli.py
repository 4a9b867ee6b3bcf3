"""The ``editjudge`` command: one verb per job, each living in its own module.

Every verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when
their verb is used, so ``editjudge --help`` and the light verbs never import torch.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence

from editjudge import __version__

# verb -> (module, one-line help). The order is the user's path: prepare -> train -> export -> eval -> score.
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("editjudge.demo", "run the whole path on a tiny offline model and synthetic edits (CPU, no downloads)"),
    "synth": ("editjudge.synthetic", "write synthetic scored edits in the seed's folder layout"),
    "prepare": ("editjudge.data.prepare", "turn folders or manifests of scored edits into verl parquet"),
    "distill": ("editjudge.distill.cli", "reasoning traces for a cold-start SFT from a teacher judge; pick hard rows"),
    "train": ("editjudge.train.cli", "GRPO + LoRA training: verl on GPUs (pre-flight on CPU) or TRL in one process"),
    "export": ("editjudge.train.export", "export a verl checkpoint as a LoRA adapter or a merged model"),
    "eval": ("editjudge.evaluate.cli", "measure a judge: accuracy, correlation, pairwise and best-of-N metrics"),
    "score": ("editjudge.judge.cli_score", "score edits with a judge (one pair or a manifest)"),
    "bench": ("editjudge.bench.cli", "score a judge on public edit-judge benchmarks with their exact metrics"),
    "best-of-n": ("editjudge.judge.cli_best_of_n", "rank N candidate edits of one source and keep the best"),
    "serve": ("editjudge.serve.cli", "serve the judge over HTTP on Ray Serve (reward endpoint, best-of-N)"),
    "tiny-model": ("editjudge.tiny", "build the tiny random Qwen2.5-VL used by tests and the demo"),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where it tells something: not None/False, and not already described in the help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``verb``'s module is imported to fill in its arguments."""
    parser = argparse.ArgumentParser(
        prog="editjudge",
        description=(
            "Train a vision-language model to judge image edits and use it to pick the best of N edits.\n"
            "Path: prepare -> [distill -> train --stage sft ->] train -> export -> eval / bench -> score / best-of-n / serve.\n"
            "Start with `editjudge demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"editjudge {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module_name, help_text) in VERBS.items():
        verb_parser = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=_HelpFormatter
        )
        if name == verb:
            module = importlib.import_module(module_name)
            module.add_arguments(verb_parser)
            verb_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``editjudge`` console script (Ctrl-C: a one-line message and exit 130, any verb).

    Run as the program (``argv`` None), it freezes the garbage collector's objects once the verb has returned: the
    process exits next, and the interpreter's last collections need not walk every module and object of the run
    (0.1–0.2 s of a short ``prepare``: docs/prepare.md). A caller passing ``argv`` (tests, notebooks) keeps its GC.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("editjudge: interrupted", file=sys.stderr)
        return 130
    finally:
        if argv is None:
            gc.freeze()


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:  # one rule for every verb: each argument is recorded in UTF-8 outputs (reports, rows, rejects)
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
            print(f"editjudge: error: the argument '{shown}' is not UTF-8 text (a file or folder name with bytes "
                  "that are not UTF-8?); the outputs record every path as UTF-8: rename it", file=sys.stderr)
            return 2
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    from editjudge.numeric_flags import check_numeric_flags

    problem = check_numeric_flags(args.verb, verb_parser(parser, args.verb), args)  # one rule for every verb
    if problem:
        print(f"editjudge {args.verb}: error: {problem}", file=sys.stderr)
        return 2
    return int(args._run(args) or 0)


def verb_parser(parser: argparse.ArgumentParser, verb: str) -> argparse.ArgumentParser:
    """The sub-parser of ``verb`` inside the top-level ``parser`` of :func:`build_parser`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[verb]


if __name__ == "__main__":
    sys.exit(main())
