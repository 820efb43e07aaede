"""Render the claims.json of `reproduce KEY --scale full` runs as a Markdown section.

    python -m benchmarks.full_scale_report DIR/claims.json ... --commit SHA --device "1x H200"
    python -m benchmarks.full_scale_report DIR/progress.log ... --commit SHA --device "..."   # unfinished runs

Appends to benchmarks/full_scale.md (the record of every full-scale run: where, when, how long,
and each claim's verdict and interval), or prints with --stdout.
"""
from __future__ import annotations

import argparse
import json
import re
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
        measured = c.get("measured_text") or _interval(c["measured"])
        lines.append(f"| `{c['id'].split('/', 1)[-1]}` | {c['kind']} | {c['verdict']} | {measured} "
                     f"| {at_ci.get(c['id'], '(not at ci)')} |")
    return "\n".join(lines) + "\n"


_LINE = re.compile(r"(\S+) (\d+) (\S+) \[(.*?)\]: (.*)")


def progress_summary(log: Path) -> list[dict]:
    """Per runner (the caller named in ``$SPARSEBOOK_PROGRESS`` lines): loops started and finished,
    seconds summed over finished loops, steps per loop, and the last rate of the unfinished ones."""
    runs: dict[str, dict] = {}
    open_loops: dict[tuple, dict] = {}
    for line in log.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        _, pid, caller, _, msg = m.groups()
        r = runs.setdefault(caller, {"runner": caller, "started": 0, "done": 0, "seconds": 0.0, "steps": set(),
                                     "open_rates": []})
        if msg.startswith("start"):
            r["started"] += 1
            r["steps"].add(int(re.search(r"start, (\d+) steps", msg).group(1)))
            open_loops[(pid, caller)] = {"rate": None}
        elif msg.startswith("done"):
            r["done"] += 1
            r["seconds"] += float(re.search(r"in ([\d.]+) s", msg).group(1))
            open_loops.pop((pid, caller), None)
        elif (pid, caller) in open_loops:
            open_loops[(pid, caller)]["rate"] = float(re.search(r"([\d.]+) steps/s", msg).group(1))
    for (pid, caller), o in open_loops.items():
        if o["rate"] is not None:
            runs[caller]["open_rates"].append(o["rate"])
    return list(runs.values())


def progress_section(log: Path, commit: str, device: str) -> str:
    key = log.parent.name
    lines = [f"### {key}: training loops in an unfinished run ({device}, commit {commit})", "",
             "| runner | loops started | finished | seconds in finished loops | steps per loop | rate of unfinished (steps/s) |",
             "|---|---|---|---|---|---|"]
    for r in progress_summary(log):
        rates = ", ".join(f"{x:.0f}" for x in r["open_rates"]) or "-"
        lines.append(f"| `{r['runner'].split('.', 1)[-1]}` | {r['started']} | {r['done']} | {r['seconds']:.0f} "
                     f"| {', '.join(map(str, sorted(r['steps'])))} | {rates} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("claims", nargs="+", type=Path)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--device", required=True)
    ap.add_argument("--stdout", action="store_true")
    a = ap.parse_args()
    text = "\n".join(progress_section(p, a.commit, a.device) if p.suffix == ".log" else section(p, a.commit, a.device)
                     for p in a.claims)
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
