"""``bench.json`` and ``bench.md``: our row beside the published rows, every number with its interval, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from editjudge.bench.published import PUBLISHED
from editjudge.data.writer import atomic_write_bytes

VARIANT_NAMES = {"score": "by score", "expected_score": "by expected score"}


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _interval(iv: dict[str, Any] | None) -> str:
    if not iv or iv.get("low") is None:
        return ""
    return f" [{iv['low']:.3f}, {iv['high']:.3f}]"


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write both files atomically; the same report gives the same bytes."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    atomic_write_bytes(json_path, (json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False, sort_keys=True) + "\n").encode())
    atomic_write_bytes(md_path, markdown(report).encode())
    return json_path, md_path


def markdown(report: dict[str, Any]) -> str:
    suite = report["suite"]
    published = PUBLISHED[suite]
    lines = [f"# editjudge bench: {suite}", "", f"- data: `{report['root']}`", f"- judge: {report['judge']['name']}"]
    sc = report["scoring"]
    lines += [
        f"- scoring: {sc['distinct_edits']} distinct edits judged for {sc['comparisons']} comparisons "
        f"({sc['judged_now']} judged now, {sc['from_cache']} from cache)",
        f"- items: {report['items']['n_read']} read, {report['items']['n_failed']} failed to read "
        f"(counted wrong): {report['items']['failure_reasons'] or 'none'}",
    ]
    if report.get("dimensions"):
        dims = report["dimensions"]
        used = ", ".join(f"{k} → {v}" for k, v in dims["compared_by"].items())
        lines.append(f"- dimensions: {dims['note']}" + (f" ({used})" if used else ""))
    lines += [
        "",
    ]
    columns = published["columns"] or {"value": report["results"]["score"]["headline"]}
    lines += ["## Beside the published results", "", "| judge | " + " | ".join(columns) + " |",
              "|---" * (len(columns) + 1) + "|"]
    for variant, res in report["results"].items():
        if res.get("value") is None and res.get("reason"):
            continue
        cells = [_fmt(res["numbers"].get(key)) + _interval(res["intervals"].get(key)) for key in columns.values()]
        lines.append(f"| **{report['judge']['name']} ({VARIANT_NAMES[variant]})** | " + " | ".join(cells) + " |")
    for row in published["rows"]:
        lines.append(f"| {row['judge']} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    lines += ["", f"Published rows: {published['source']}.", ""]
    for variant, res in report["results"].items():
        lines += [f"## All numbers, {VARIANT_NAMES[variant]}", ""]
        if res.get("value") is None and res.get("reason"):
            lines += [f"Not available: {res['reason']}.", ""]
            continue
        lines += [
            f"Headline `{res['headline']}` = {_fmt(res['value'])}{_interval(res['intervals'].get(res['headline']))}; "
            f"{res['n_pairs']} comparisons: {res['n_pairs_unscored']} with an unscored candidate (counted wrong), "
            f"{res['n_judge_ties']} judge tie(s); {res['n_items_not_scored']} read items with a candidate the judge "
            f"did not score ({res['judge_failure_reasons'] or 'none'}).",
            "",
            "| number | value | 95% interval (group bootstrap) |",
            "|---|---|---|",
        ]
        for key, value in res["numbers"].items():
            iv = res["intervals"].get(key) or {}
            lines.append(f"| `{key}` | {_fmt(value)} | {_interval(iv).strip() or iv.get('reason', '–')} |")
        lines.append("")
    failed = report["items"]["failed_examples"]
    if failed:
        lines += ["## Items that failed", "", "| item | reason | detail |", "|---|---|---|"]
        lines += [f"| {f['id']} | {f['reason']} | {f['detail'].replace('|', '/')} |" for f in failed]
        if report["items"]["n_failed"] > len(failed):
            lines.append(f"| … | {report['items']['n_failed'] - len(failed)} more | see bench.json |")
        lines.append("")
    return "\n".join(lines)
