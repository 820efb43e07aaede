"""Render the claims.json of `reproduce KEY --scale full` runs as a Markdown section.

    python -m benchmarks.full_scale_report DIR/claims.json ... --commit SHA --device "1x H200"

Appends to benchmarks/full_scale.md (the record of every full-scale run: where, when, how long,
and each claim's verdict and interval), or prints with --stdout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sparsebook.claims import claims_from_notebook, summarize, summary_line

HERE = Path(__file__).resolve().parent
BOOK = HERE.parent / "book"


def _interval(m) -> str:
    if not isinstance(m, dict):
        return str(m)
    if m.get("kind") == "exact":
        return f"{m['value']:.4g} (exact)"
    lo, hi, n = m.get("lo"), m.get("hi"), m.get("n")
    mean = m.get("value", m.get("mean"))
    mid = f"{mean:.3g} " if isinstance(mean, (int, float)) else ""
    return f"{mid}[{lo:.3g}, {hi:.3g}] ({m.get('kind')}, n = {n})"


def section(claims_path: Path, commit: str, device: str) -> str:
    d = json.loads(claims_path.read_text())
    stored = BOOK / f"{d['chapter']}.ipynb"
    at_ci = {c["id"]: c["verdict"] for c in claims_from_notebook(stored)} if stored.is_file() else {}
    lines = [f"## {d['chapter']} at `{d['scale']}`: {d['seconds']:.0f} s on {device}, commit {commit}", "",
             summary_line(summarize(d["claims"])), "",
             "| claim | kind | verdict | measured | stored verdict at `ci` |", "|---|---|---|---|---|"]
    for c in d["claims"]:
        lines.append(f"| `{c['id'].split('/', 1)[-1]}` | {c['kind']} | {c['verdict']} | {_interval(c['measured'])} "
                     f"| {at_ci.get(c['id'], '(not at ci)')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("claims", nargs="+", type=Path)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--stdout", action="store_true")
    a = ap.parse_args()
    text = "\n".join(section(p, a.commit, a.device) for p in a.claims)
    if a.stdout:
        print(text)
        return
    out = HERE / "full_scale.md"
    if not out.exists():
        out.write_text("# Full-scale runs\n\n`python -m sparsebook reproduce KEY --scale full` on a GPU machine "
                       "(`benchmarks/full_scale_gpu.sh`); one section per run, newest last.\n\n")
    with out.open("a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
