"""The batch's results table: ``results.csv`` (every field, for scripts and spreadsheets) and ``results.md`` (the
columns a person reads), one row per scene in the batch's order, rewritten after every scene so that a stopped
batch leaves a current table."""
import csv
import os
from typing import Dict, List

__all__ = ["CSV_COLUMNS", "write_tables", "summary_line", "scene_line"]

CSV_COLUMNS = ["scene", "status", "train_seconds", "chamfer", "chamfer_pct", "fscore", "mesh", "error", "steps",
               "attempt", "resumed_from", "wall_seconds", "host", "scene_dir", "run_dir"]
STATUSES = ("done", "skipped", "failed", "interrupted", "queued", "not run")


def _number(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def _markdown_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_tables(records: List[Dict], batch_dir: str):
    """Write results.csv and results.md into ``batch_dir`` (each atomically); returns their paths."""
    csv_path, md_path = os.path.join(batch_dir, "results.csv"), os.path.join(batch_dir, "results.md")
    with open(csv_path + ".tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows([{k: ("" if r.get(k) is None else r[k]) for k in CSV_COLUMNS} for r in records])
    os.replace(csv_path + ".tmp", csv_path)
    lines = [f"# {os.path.basename(batch_dir.rstrip(os.sep))}: {summary_line(records)}", "",
             "| scene | status | training s | Chamfer | Chamfer % of diag | F-score @0.5% | mesh | error |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        mesh = os.path.relpath(r["mesh"], batch_dir) if r.get("mesh") else ""
        lines.append(f"| {r['scene']} | {r['status']} | {_number(r.get('train_seconds'), 1)} | "
                     f"{_number(r.get('chamfer'), 5)} | {_number(r.get('chamfer_pct'), 3)} | "
                     f"{_number(r.get('fscore'), 3)} | {_markdown_cell(mesh)} | "
                     f"{_markdown_cell(r.get('error') or '')} |")
    with open(md_path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(md_path + ".tmp", md_path)
    return csv_path, md_path


def summary_line(records: List[Dict]) -> str:
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no scenes"


def scene_line(record: Dict) -> str:
    """One line for the terminal when a scene ends."""
    r = record
    if r["status"] in ("done", "skipped"):
        score = f", Chamfer {r['chamfer']:.5f} ({r['chamfer_pct']:.3f}% of diag), F {r['fscore']:.3f}" \
            if r.get("chamfer") is not None else ""
        seconds = f" after {r['train_seconds']:.1f} s of training" if r.get("train_seconds") is not None else ""
        resumed = f", resumed from step {r['resumed_from']}" if r.get("resumed_from") else ""
        return f"{r['scene']}: {r['status']}{seconds}{resumed}{score} -> {r['mesh']}"
    return f"{r['scene']}: {r['status']}: {r.get('error') or ''}"
