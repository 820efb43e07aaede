"""The benchmark harness: our kernel and a peer's, timed in the same run (median of repeats).

A chapter's benchmarks live in ``benchmarks/bench_<key>.py``, which defines
``benchmarks() -> list[Benchmark]``.  ``python -m benchmarks`` (``make bench``)
runs them all, prints one table and writes it to ``benchmarks/results.md``.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Benchmark:
    """One comparison.

    ``ours`` and ``peer`` are zero-argument callables doing the same work;
    ``check(ours_result, peer_result)`` (optional) returns a short agreement
    string such as ``"max rel err 3e-15"`` and raises if they disagree.
    """

    chapter: str
    name: str
    ours: Callable[[], Any]
    peer: Callable[[], Any]
    peer_name: str
    repeats: int = 7
    check: Callable[[Any, Any], str] | None = None
    extra: dict = field(default_factory=dict)


def _block(x):
    """Wait for asynchronous results (JAX arrays) so that timings are honest."""
    if hasattr(x, "block_until_ready"):
        x.block_until_ready()
    elif isinstance(x, (tuple, list)):
        for v in x:
            _block(v)
    return x


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call (compilation, caches)."""
    out = _block(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(bench: Benchmark) -> dict:
    """Time ``ours`` and ``peer`` alternately in one run and return a result row."""
    t_ours, r_ours = median_time(bench.ours, bench.repeats)
    t_peer, r_peer = median_time(bench.peer, bench.repeats)
    agreement = bench.check(r_ours, r_peer) if bench.check else ""
    return {"chapter": bench.chapter, "kernel": bench.name, "peer": bench.peer_name,
            "ours_s": t_ours, "peer_s": t_peer, "speedup": t_peer / t_ours, "agreement": agreement}


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def table(rows: list[dict]) -> str:
    """Rows as a Markdown table."""
    head = "| chapter | kernel | peer | ours | peer | peer/ours | agreement |\n|---|---|---|---:|---:|---:|---|\n"
    body = "".join(
        f"| {r['chapter']} | {r['kernel']} | {r['peer']} | {_fmt_time(r['ours_s'])} | {_fmt_time(r['peer_s'])} "
        f"| {r['speedup']:.2f}× | {r['agreement']} |\n" for r in rows)
    return head + body
