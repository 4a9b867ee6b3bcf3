"""The seed's data script, kept for its users: the same flags, now running ``editjudge prepare``.

    python recipe/tts_edit/tts_rm.py --data_dir /data/tts-edit/edited_images --local_dir ~/data/tts_edit \\
        --train_split 0.9 --score_median 0.9 --score_mad 0.1

Differences from the seed (see docs/prepare.md): the split keeps all candidates of one source on one side, images
are sized to the token budget instead of halved, bad samples are listed in rejects.jsonl instead of crashing the run.
Any other ``editjudge prepare`` flag may follow (``--processor PATH``, ``--max-prompt-length``, ``--workers`` …).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Seed-compatible entry point of `editjudge prepare` (extra editjudge prepare flags are passed on).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data_dir", required=True, help="folder of <stem>_input/_output/_meta.json/_score.json files, or a manifest")
    parser.add_argument("--local_dir", default="~/data/tts_edit", help="output folder for train.parquet / test.parquet")
    parser.add_argument("--hdfs_dir", default=None, help="(seed flag, not supported: copy local_dir yourself)")
    parser.add_argument("--train_split", type=float, default=0.9, help="fraction of samples for train")
    parser.add_argument("--score_median", type=float, default=0.9, help="median of the label formula")
    parser.add_argument("--score_mad", type=float, default=0.1, help="MAD of the label formula")
    parser.add_argument("--sample_size", type=int, default=None, help="keep at most this many samples")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and the sampling")
    parser.add_argument("--balanced_sampling", action="store_true", help="equal number of samples per label")
    return parser


def to_prepare_argv(args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str]:
    """The ``editjudge`` command line equivalent to the seed's flags."""
    argv = ["prepare", args.data_dir, "--out", args.local_dir, "--train-split", str(args.train_split),
            "--score-median", str(args.score_median), "--score-mad", str(args.score_mad), "--seed", str(args.seed)]
    if args.sample_size is not None:
        argv += ["--sample-size", str(args.sample_size)]
    if args.balanced_sampling:
        argv.append("--balanced")
    return argv + list(extra)


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if args.hdfs_dir:
        print("tts_rm.py: --hdfs_dir is not supported; copy the output folder with your HDFS tools", file=sys.stderr)
    from editjudge.cli import main as editjudge_main

    return editjudge_main(to_prepare_argv(args, extra))


if __name__ == "__main__":
    sys.exit(main())
