"""The SparseBook command line.

    python -m sparsebook list
    python -m sparsebook reproduce KEY [--scale ci|full] [--out DIR]
    python -m sparsebook execute (--all | KEY ...)

``list`` shows the chapters (from ``_toc.yml``) with their claim verdicts as stored.
``reproduce`` executes one chapter with papermill at the chosen scale and writes
``DIR/KEY.ipynb``, ``DIR/figures/*.png`` and ``DIR/claims.json``.
``execute`` re-executes chapters in place (what ``make book`` does), then the scoreboard.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

from sparsebook.claims import CLAIMS_MIME, summary_line, claims_from_notebook, summarize
from sparsebook.scales import SCALES

#: Pages of the book that are not chapters (they hold no experiments).
NON_CHAPTERS = ("intro", "scoreboard", "bibliography")


def repo_root() -> Path:
    """The repository root (holds ``_toc.yml`` and ``book/``); the package is installed editable."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "_toc.yml").is_file():
        raise FileNotFoundError(
            f"no _toc.yml in {root}: run the CLI from a clone of the SparseBook repository "
            "(the package is installed with `pip install -e .`)")
    return root


def toc_pages(root: Path | None = None) -> list[str]:
    """Page names (``book/<name>``) in ``_toc.yml`` order."""
    import yaml

    root = root or repo_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for key in ("chapters", "sections", "parts"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for key in ("chapters", "parts"):
        walk(toc.get(key, []))
    return [p.split("/", 1)[1] if p.startswith("book/") else p for p in pages]


def chapters(root: Path | None = None) -> list[str]:
    """Chapter keys in book order (pages of ``_toc.yml`` that are chapter notebooks)."""
    root = root or repo_root()
    return [p for p in toc_pages(root) if p not in NON_CHAPTERS and (root / "book" / f"{p}.ipynb").is_file()]


def _title(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return nb_path.stem


def _check_key(key: str, root: Path) -> Path:
    """The notebook of chapter ``key`` (a chapter of the toc, or a notebook in book/ not yet in it)."""
    path = root / "book" / f"{key}.ipynb"
    if key in NON_CHAPTERS or not path.is_file():
        raise SystemExit(f"error: unknown chapter {key!r}; choose one of: {', '.join(chapters(root))}")
    return path


def cmd_list(args) -> int:
    root = repo_root()
    for key in chapters(root):
        nb = root / "book" / f"{key}.ipynb"
        s = summarize(claims_from_notebook(nb))
        print(f"{key:26s} {_title(nb)}")
        print(f"{'':26s} claims: {summary_line(s)}")
    return 0


def extract_outputs(nb_path: Path, out: Path) -> tuple[list[Path], list[dict]]:
    """Write every PNG figure of an executed notebook to ``out/figures`` and return (figures, claim records)."""
    nb = json.loads(nb_path.read_text())
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figures, records = [], []
    for i, cell in enumerate(nb["cells"]):
        for j, o in enumerate(cell.get("outputs", []) or []):
            data = o.get("data", {})
            if "image/png" in data:
                p = figdir / f"{nb_path.stem}-cell{i:02d}-{j}.png"
                p.write_bytes(base64.b64decode(data["image/png"]))
                figures.append(p)
            if CLAIMS_MIME in data:
                payload = data[CLAIMS_MIME]
                records.extend(json.loads(payload)["claims"] if isinstance(payload, str) else payload["claims"])
    return figures, records


def kernel_config(socket_dir: str):
    """Jupyter configuration for a kernel this CLI starts: IPC (Unix socket) transport in ``socket_dir``.

    With the default TCP transport, jupyter_client picks five free ports by binding and releasing
    them; two kernels started at the same moment (two test workers, two chapters) can pick the same
    port, and one client then waits forever on a kernel that never answers. Sockets in a directory
    of the caller's own (a fresh temporary one per kernel) cannot collide."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc", "ip": str(Path(socket_dir) / "kernel")}})


def cmd_reproduce(args) -> int:
    import papermill as pm

    root = repo_root()
    src = _check_key(args.key, root)
    out = Path(args.out or f"reproduce-{args.key}-{args.scale}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{args.key}.ipynb"
    print(f"executing {src.relative_to(root)} at SCALE={args.scale!r} -> {dst}", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sparsebook-kernel-") as sockets:
        pm.execute_notebook(str(src), str(dst), parameters={"SCALE": args.scale, "SEED": args.seed},
                            cwd=str(src.parent), progress_bar=True, kernel_name="python3",
                            execution_timeout=args.timeout, config=kernel_config(sockets))
    elapsed = time.perf_counter() - t0
    figures, records = extract_outputs(dst, out)
    claims_path = out / "claims.json"
    claims_path.write_text(json.dumps({"chapter": args.key, "scale": args.scale, "seed": args.seed,
                                       "seconds": round(elapsed, 1), "claims": records}, indent=2) + "\n")
    s = summarize(records)
    print(f"done in {elapsed:.1f} s: {len(figures)} figures in {out / 'figures'}, claims in {claims_path}: "
          f"{summary_line(s)}")
    return 0


def execute_in_place(nb_path: Path, timeout: int = 1200) -> float:
    """Execute a notebook top to bottom with its stored parameters and store the outputs; return seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(nb_path, as_version=4)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sparsebook-kernel-") as sockets:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", config=kernel_config(sockets),
                       resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    nbformat.write(nb, nb_path)
    return time.perf_counter() - t0


def cmd_execute(args) -> int:
    root = repo_root()
    keys = chapters(root) if args.all else args.keys
    if not keys:
        raise SystemExit("error: name chapters to execute, or pass --all")
    paths = [_check_key(k, root) for k in keys]
    scoreboard = root / "book" / "scoreboard.ipynb"
    if args.all and scoreboard.is_file():      # the scoreboard reads the chapters' fresh outputs
        paths.append(scoreboard)
    for p in paths:
        print(f"executing {p.relative_to(root)} ...", flush=True)
        print(f"  {execute_in_place(p):.1f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparsebook", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters and their claim verdicts").set_defaults(func=cmd_list)
    rep = sub.add_parser("reproduce", help="execute one chapter with papermill and save notebook, figures, claims")
    rep.add_argument("key", help="chapter key, e.g. dendrites")
    rep.add_argument("--scale", choices=SCALES, default="ci")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument("--out", help="output folder (default: reproduce-KEY-SCALE)")
    rep.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    rep.set_defaults(func=cmd_reproduce)
    ex = sub.add_parser("execute", help="re-execute chapters in place (with --all, as make book does: then the scoreboard)")
    ex.add_argument("keys", nargs="*")
    ex.add_argument("--all", action="store_true")
    ex.set_defaults(func=cmd_execute)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
