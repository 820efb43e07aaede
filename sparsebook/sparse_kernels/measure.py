"""The chapter's GPU measurement, all of it in one process: ``python -m sparsebook.sparse_kernels.measure --out DIR``.

Writes ``DIR/sparse_kernels_h200.json`` (the file the chapter stores as ``book/data/``): the GPU,
driver and library versions, the shapes and dtypes, and every timed repeat.

1. Activation-sparse GEMV (:func:`sparsebook.sparse_kernels.gpu.sparse_gemv`) against cuBLAS
   dense (``torch.nn.functional.linear``) at batch 1: correctness of every launch configuration
   against a float64 reference (output poisoned with NaN first), a short tuning pass that keeps
   the fastest configuration per point, the crossover sparsity of the dispatcher (the lowest
   measured sparsity at which the kernel beats the dense fallback in the tuning pass), then the
   final interleaved rounds: dense, the dense fallback (threshold, then cuBLAS), the kernel and the dispatcher, one after
   the other in every round, the L2 cache flushed before every call.
2. Decoder layers of LLaMA-7B size at batch 1 (weights only: q, k, v, o, gate, up, down; no
   attention over a KV cache): dense, CATS (sparse up and down projections) and CHESS-style
   (also sparse q and o inputs), eight distinct layers captured in one CUDA graph and replayed.
3. 2:4 semi-structured sparsity (``torch.sparse.to_sparse_semi_structured``, cuSPARSELt and
   CUTLASS backends) against dense ``F.linear`` over M tokens, eager (back-to-back calls, so host
   overhead shows) and as CUDA-graph replays.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from sparsebook.sparse_kernels import gpu
from sparsebook.sparse_kernels.kernels import (dispatch_crossover, dispatch_plan, sparse_gemv_reference,
                                               sparse_rows_reference, threshold_for_sparsity, two_four_mask)

GEMV_SHAPES = ((11008, 4096), (28672, 8192))  # (K inputs, N outputs): LLaMA-7B and LLaMA-70B down projections
GEMV_SPARSITIES = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95)
SEMI_SHAPES = ((4096, 11008), (8192, 28672))  # (K, N): up projections
SEMI_M = (1, 16, 64, 256, 1024, 4096, 16384)


def _log(*a):
    print(*a, flush=True)


def environment() -> dict:
    props = torch.cuda.get_device_properties(0)
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # pragma: no cover - device only
        drv = f"unavailable ({e})"
    try:
        cslt = torch.backends.cusparselt.version()
    except Exception:  # pragma: no cover
        cslt = None
    return {"gpu": torch.cuda.get_device_name(0), "sm_count": props.multi_processor_count,
            "memory_gib": round(props.total_memory / 2**30, 1), "capability": list(torch.cuda.get_device_capability(0)),
            "nvidia_smi": drv, "torch": torch.__version__, "cuda": torch.version.cuda, "triton": gpu.triton_version(),
            "cusparselt": cslt, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def copy_bandwidth() -> dict:
    a = torch.empty(2 * 2**30 // 4, dtype=torch.float32, device="cuda").normal_()
    b = torch.empty_like(a)
    ts = gpu.time_calls(lambda: b.copy_(a), 10)
    med = statistics.median(ts)
    return {"bytes": 2 * a.numel() * 4, "times_ms": ts, "tbps": 2 * a.numel() * 4 / (med * 1e-3) / 1e12}


def _median(xs):
    return statistics.median(xs)


def _rounded(ts):
    return [round(v, 6) for v in ts]


def gemv_section(quick: bool, rounds: int, calls: int) -> dict:
    flush = torch.ones(256 * 2**20 // 4, dtype=torch.int32, device="cuda")
    out = {"shapes": [list(s) for s in GEMV_SHAPES], "sparsities": list(GEMV_SPARSITIES),
           "configs": [c.record() for c in gpu.CONFIGS], "correctness": [], "tuning": [], "points": [],
           "crossover": {}, "rounds": rounds, "calls": calls,
           "timing": "CUDA events around each call; a 256 MiB buffer read (summed) before every call flushes the L2 cache"}
    sps = GEMV_SPARSITIES if not quick else (0.0, 0.5, 0.9)
    dtypes = (torch.float16, torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(0)
    for (K, N) in GEMV_SHAPES:
        for dt in dtypes:
            w = torch.randn(N, K, device="cuda", dtype=dt, generator=g) / math.sqrt(K)  # nn.Linear layout
            wt = w.t().contiguous()
            name = f"{K}x{N}/{str(dt).split('.')[-1]}"
            # correctness: every config, fresh inputs, output poisoned
            for s in (0.0, 0.5, 0.9):
                x = torch.randn(K, device="cuda", dtype=dt, generator=g)
                t = threshold_for_sparsity(x.float().cpu(), s)
                ref = sparse_gemv_reference(x.cpu(), wt.cpu(), t)
                for c in gpu.CONFIGS:
                    y = torch.full((N,), float("nan"), device="cuda", dtype=dt)
                    try:
                        gpu.sparse_gemv(x, wt, t, c, out=y)
                        torch.cuda.synchronize()
                        yd = y.double().cpu()
                        err = float((yd - ref).norm() / ref.norm()) if torch.isfinite(yd).all() else float("nan")
                        rec = {"shape": name, "sparsity": s, "config": c.record(), "rel_err": err}
                    except Exception as e:
                        rec = {"shape": name, "sparsity": s, "config": c.record(), "error": repr(e)[:300]}
                    out["correctness"].append(rec)
            ok = [c for c in gpu.CONFIGS if all(r.get("rel_err", math.inf) < (3e-3 if dt == torch.float16 else 2e-2)
                                               for r in out["correctness"] if r["shape"] == name and r["config"] == c.record())]
            _log(name, "configs passing correctness:", len(ok), "of", len(gpu.CONFIGS))
            dense = lambda xx: F.linear(xx, w)
            pts = []
            for s in sps:
                x = torch.randn(1, K, device="cuda", dtype=dt, generator=g)
                xv = x[0].contiguous()
                t = threshold_for_sparsity(xv.float().cpu(), s)
                active = float((xv.abs() > t).float().mean())
                tun = {"shape": name, "sparsity": s, "dense_ms": _median(gpu.time_calls(lambda: dense(x), 20, flush)),
                       "fallback_ms": _median(gpu.time_calls(lambda: gpu.dense_gemv(xv, wt, t), 20, flush)),
                       "configs": []}
                for c in ok:
                    tun["configs"].append({"config": c.record(),
                                           "ms": _median(gpu.time_calls(lambda: gpu.sparse_gemv(xv, wt, t, c), 20, flush))})
                out["tuning"].append(tun)
                best = min(tun["configs"], key=lambda r: r["ms"]) if tun["configs"] else None
                pts.append((s, x, xv, t, active, best, tun))
            # crossover of the dispatcher: the lowest sparsity from which the kernel beats the fallback
            wins = [s for (s, *_r, best, tun) in pts if best is not None and best["ms"] < tun["fallback_ms"]]
            cross = dispatch_crossover([p[0] for p in pts], [p[5]["ms"] if p[5] else math.inf for p in pts],
                                       [p[6]["fallback_ms"] for p in pts])
            out["crossover"][name] = {"sparsity": cross, "wins_at": wins}
            for s, x, xv, t, active, best, tun in pts:
                cfg = gpu.GemvConfig(**best["config"]) if best else gpu.CONFIGS[0]
                methods = {"dense": lambda: dense(x), "fallback": lambda: gpu.dense_gemv(xv, wt, t),
                           "sparse": lambda: gpu.sparse_gemv(xv, wt, t, cfg),
                           "dispatch": lambda: gpu.dispatch_gemv(xv, wt, t, s, cross, cfg)}
                times = {m: [] for m in methods}
                for _ in range(rounds):
                    for m, fn in methods.items():
                        times[m].append(_rounded(gpu.time_calls(fn, calls, flush)))
                rec = {"shape": name, "K": K, "N": N, "dtype": str(dt).split(".")[-1], "sparsity": s,
                       "threshold": t, "active_fraction": active, "config": cfg.record(),
                       "dispatch_path": "sparse" if s >= cross else "dense", "times_ms": times}
                out["points"].append(rec)
                md = _median([_median(r) for r in times["dense"]])
                ms = _median([_median(r) for r in times["sparse"]])
                mdp = _median([_median(r) for r in times["dispatch"]])
                _log(f"{name} s={s:.2f} active={active:.3f} dense {md * 1e3:.1f}us sparse {ms * 1e3:.1f}us "
                     f"speedup {md / ms:.2f} ideal {1 / max(active, 1e-9):.2f} dispatch {md / mdp:.2f} cfg {cfg}")
            del w, wt
            torch.cuda.empty_cache()
    return out


def _capture(step, calls: int) -> "torch.cuda.CUDAGraph":
    """``calls`` calls of ``step`` captured in one CUDA graph (after two warm-up calls on a side stream)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    gr = torch.cuda.CUDAGraph()
    with torch.cuda.graph(gr):
        for _ in range(calls):
            step()
    return gr


def _replay_ms(gr, n: int = 20) -> float:
    """Mean time (ms) of ``n`` back-to-back replays of the CUDA graph ``gr``, after one warm-up replay."""
    gr.replay()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(n):
        gr.replay()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) / n


def _interleaved_replays(graphs: dict, rounds: int, tag: str, errors: dict) -> dict:
    """``rounds`` rounds of :func:`_replay_ms` of every graph in turn; logs each variant's speedup over "dense"."""
    times = {k: [] for k in graphs}
    for _ in range(rounds):
        for k, gr in graphs.items():
            times[k].append(_replay_ms(gr))
    if "dense" in times:
        md = _median(times["dense"])
        _log(f"{tag} dense {md * 1e3:.1f}us/stack " +
             " ".join(f"{k} {md / _median(v):.3f}x" for k, v in times.items() if k != "dense"), errors or "")
    return times


class _Layer:
    """One LLaMA-7B-sized decoder layer's weights (fp16), in the layouts each variant reads."""

    def __init__(self, d, f, g):
        mk = lambda o, i: (torch.randn(o, i, device="cuda", dtype=torch.float16, generator=g) / math.sqrt(i))
        self.wq, self.wk, self.wv, self.wo = mk(d, d), mk(d, d), mk(d, d), mk(d, d)
        self.wg, self.wu, self.wd = mk(f, d), mk(f, d), mk(d, f)
        self.wdt = self.wd.t().contiguous()
        self.wqt, self.wot = self.wq.t().contiguous(), self.wo.t().contiguous()


def _layer_dense(L, x, att):
    qkvo = (F.linear(x, L.wq), F.linear(x, L.wk), F.linear(x, L.wv), F.linear(att, L.wo))
    h = F.silu(F.linear(x, L.wg)) * F.linear(x, L.wu)
    return F.linear(h, L.wd), qkvo


def _layer_sparse(L, x, att, t_ffn, t_x, t_att, chess, cfg_d, cfg_q):
    if chess:
        q = gpu.sparse_gemv(x, L.wqt, t_x, cfg_q)
        o = gpu.sparse_gemv(att, L.wot, t_att, cfg_q)
    else:
        q, o = F.linear(x, L.wq), F.linear(att, L.wo)
    k, v = F.linear(x, L.wk), F.linear(x, L.wv)
    a = F.silu(F.linear(x, L.wg))
    h = gpu.sparse_rows_gemv(x, a, L.wu, t_ffn)
    return gpu.sparse_gemv(h, L.wdt, 0.0, cfg_d), (q, k, v, o)


def layer_section(quick: bool, rounds: int, gemv: dict) -> dict:
    d, f, n_layers = 4096, 11008, 8
    g = torch.Generator(device="cuda").manual_seed(1)
    layers = [_Layer(d, f, g) for _ in range(n_layers)]
    x = torch.randn(d, device="cuda", dtype=torch.float16, generator=g)
    att = torch.randn(d, device="cuda", dtype=torch.float16, generator=g)
    # configs: the tuned best for the down projection (11008 x 4096, fp16) at 50% and 90%; for q/o a default
    best = {p["sparsity"]: gpu.GemvConfig(**p["config"]) for p in gemv["points"] if p["shape"] == "11008x4096/float16"}
    out = {"d_model": d, "d_ff": f, "layers": n_layers, "dtype": "float16", "rounds": rounds, "replays": 20,
           "timing": "eight distinct layers captured in one CUDA graph; CUDA events around 20 replays",
           "correctness": [], "points": []}
    # correctness of the CATS FFN against float64
    L = layers[0]
    a = F.silu(F.linear(x, L.wg))
    t = threshold_for_sparsity(a.float().cpu(), 0.5)
    h = gpu.sparse_rows_gemv(x, a, L.wu, t)
    href = sparse_rows_reference(x.cpu(), a.cpu(), L.wu.cpu(), t)
    y = gpu.sparse_gemv(h, L.wdt, 0.0, best.get(0.5))
    yref = L.wd.double().cpu() @ href
    out["correctness"].append({"h_rel_err": float((h.double().cpu() - href).norm() / href.norm()),
                               "y_rel_err": float((y.double().cpu() - yref).norm() / yref.norm())})

    graph_of = lambda step: _capture(step, 1)

    sps = (0.5, 0.7, 0.9) if not quick else (0.5,)
    for s in sps:
        ts_ffn, ts_x, ts_att = [], threshold_for_sparsity(x.float().cpu(), s), threshold_for_sparsity(att.float().cpu(), s)
        for L in layers:
            ts_ffn.append(threshold_for_sparsity(F.silu(F.linear(x, L.wg)).float().cpu(), s))
        cfg_d = best.get(s, gpu.CONFIGS[0])
        cfg_q = gpu.GemvConfig(1024, 128, 8, False, 8, 2, "compact")
        variants = {
            "dense": lambda: [_layer_dense(L, x, att) for L in layers],
            "cats": lambda: [_layer_sparse(L, x, att, tf, ts_x, ts_att, False, cfg_d, cfg_q) for L, tf in zip(layers, ts_ffn)],
            "chess": lambda: [_layer_sparse(L, x, att, tf, ts_x, ts_att, True, cfg_d, cfg_q) for L, tf in zip(layers, ts_ffn)],
        }
        graphs, errors = {}, {}
        for k, fn in variants.items():
            try:
                graphs[k] = graph_of(fn)
            except Exception as e:
                errors[k] = repr(e)[:300]
        times = _interleaved_replays(graphs, rounds, f"layer s={s}", errors)
        out["points"].append({"sparsity": s, "times_ms": times, "errors": errors,
                              "config_down": cfg_d.record(), "config_qo": cfg_q.record()})
        del graphs
    del layers
    torch.cuda.empty_cache()
    return out


def _tuned_ms(fns: dict, flush, calls: int = 20) -> dict:
    """Median time (ms) of each callable in ``fns`` (name -> fn), the L2 flushed before every call."""
    return {k: _median(gpu.time_calls(fn, calls, flush)) for k, fn in fns.items()}


def _layer_planned(L, x, att, t_ffn, t_x, t_att, plan, cfg):
    """One decoder layer with each projection's path from ``plan`` (name -> "sparse" | "dense" | "off").

    ``"off"``: not thresholded (CATS leaves q and o alone); ``"dense"``: the threshold applied, then
    cuBLAS (the dispatcher's fallback, same semantics as the kernel); ``"sparse"``: the Triton
    kernel (``cfg[name]``).  Same outputs for "dense" and "sparse" up to rounding.
    """
    def proj(name, v, w, wt, t):
        if plan[name] == "sparse":
            return gpu.sparse_gemv(v, wt, t, cfg[name])
        return gpu.dense_gemv(v, wt, t) if plan[name] == "dense" else F.linear(v, w)

    q = proj("q", x, L.wq, L.wqt, t_x)
    o = proj("o", att, L.wo, L.wot, t_att)
    k, v = F.linear(x, L.wk), F.linear(x, L.wv)
    a = F.silu(F.linear(x, L.wg))
    if plan["up"] == "sparse":
        h = gpu.sparse_rows_gemv(x, a, L.wu, t_ffn)
    else:
        h = F.hardshrink(a, t_ffn) * F.linear(x, L.wu)
    # the rows kernel returns float32 h; the dense down projection needs it in the weights' dtype
    y = gpu.sparse_gemv(h, L.wdt, 0.0, cfg["down"]) if plan["down"] == "sparse" else F.linear(h.to(L.wd.dtype), L.wd)
    return y, (q, k, v, o)


def dispatch_section(quick: bool, rounds: int) -> dict:
    """The per-projection dispatcher, measured: a crossover table, then layers that follow it.

    1. For each projection shape of a LLaMA-7B layer (q and o: 4096 -> 4096 through
       :func:`gpu.sparse_gemv`; up: the output-sparse :func:`gpu.sparse_rows_gemv`, 4096 -> 11008;
       down: 11008 -> 4096), fp16, at every sparsity of ``GEMV_SPARSITIES``: the fastest correct
       kernel configuration against the dense fallback (threshold, then cuBLAS), each the median
       of 20 calls with the L2 flushed; the crossover (:func:`dispatch_crossover`) per shape.
    2. Eight distinct layers in one CUDA graph, replayed (as in :func:`layer_section`): dense, CATS,
       CHESS-style (every thresholded projection sparse) and both with the dispatcher
       (:func:`dispatch_plan` of the table), interleaved in every round.
    """
    d, f, n_layers = 4096, 11008, 8
    flush = torch.ones(256 * 2**20 // 4, dtype=torch.int32, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(3)
    sps = GEMV_SPARSITIES if not quick else (0.0, 0.5, 0.9)
    mk = lambda o, i: torch.randn(o, i, device="cuda", dtype=torch.float16, generator=g) / math.sqrt(i)
    shapes = {"qo": (d, d), "down": (f, d)}
    out = {"d_model": d, "d_ff": f, "layers": n_layers, "dtype": "float16", "sparsities": list(sps), "rounds": rounds,
           "tuning": [], "crossover": {}, "best_config": {}, "correctness": [], "points": [],
           "timing": "tuning: median of 20 calls, L2 flushed before each; layers: eight distinct layers captured "
                     "in one CUDA graph, CUDA events around 20 replays, variants interleaved in every round"}
    best_cfg = {}
    for key, (K, N) in shapes.items():
        w = mk(N, K)
        wt = w.t().contiguous()
        xc = torch.randn(K, device="cuda", dtype=torch.float16, generator=g)
        tc = threshold_for_sparsity(xc.float().cpu(), 0.5)
        ref = sparse_gemv_reference(xc.cpu(), wt.cpu(), tc)
        ok = []
        for c in gpu.CONFIGS:
            try:
                y = torch.full((N,), float("nan"), device="cuda", dtype=torch.float16)
                gpu.sparse_gemv(xc, wt, tc, c, out=y)
                torch.cuda.synchronize()
                err = float((y.double().cpu() - ref).norm() / ref.norm())
            except Exception as e:  # pragma: no cover - device only
                err = float("nan")
                _log(key, c, "failed", repr(e)[:200])
            out["correctness"].append({"shape": key, "config": c.record(), "rel_err": err})
            if err < 3e-3:
                ok.append(c)
        sparse_ms, dense_ms = [], []
        for s in sps:
            x = torch.randn(K, device="cuda", dtype=torch.float16, generator=g)
            t = threshold_for_sparsity(x.float().cpu(), s)
            tm = _tuned_ms({"dense": lambda: gpu.dense_gemv(x, wt, t),
                            **{i: (lambda c=c: gpu.sparse_gemv(x, wt, t, c)) for i, c in enumerate(ok)}}, flush)
            dense = tm.pop("dense")
            i_best = min(tm, key=tm.get)
            best_cfg[(key, s)] = ok[i_best]
            sparse_ms.append(tm[i_best])
            dense_ms.append(dense)
            out["tuning"].append({"shape": key, "sparsity": s, "dense_ms": dense, "sparse_ms": tm[i_best],
                                  "config": ok[i_best].record()})
        out["crossover"][key] = dispatch_crossover(sps, sparse_ms, dense_ms)
        _log(f"dispatch table {key}: crossover {out['crossover'][key]}",
             " ".join(f"{s:g}:{dm / sm:.2f}x" for s, sm, dm in zip(sps, sparse_ms, dense_ms)))
        del w, wt
    # the up projection: the output-sparse rows kernel against threshold-then-cuBLAS
    wu, wg = mk(f, d), mk(f, d)
    x = torch.randn(d, device="cuda", dtype=torch.float16, generator=g)
    a = F.silu(F.linear(x, wg))
    sparse_ms, dense_ms = [], []
    for s in sps:
        t = threshold_for_sparsity(a.float().cpu(), s)
        tm = _tuned_ms({"dense": lambda: F.hardshrink(a, t) * F.linear(x, wu),
                        "sparse": lambda: gpu.sparse_rows_gemv(x, a, wu, t)}, flush)
        sparse_ms.append(tm["sparse"])
        dense_ms.append(tm["dense"])
        out["tuning"].append({"shape": "up", "sparsity": s, "dense_ms": tm["dense"], "sparse_ms": tm["sparse"]})
    out["crossover"]["up"] = dispatch_crossover(sps, sparse_ms, dense_ms)
    _log(f"dispatch table up: crossover {out['crossover']['up']}",
         " ".join(f"{s:g}:{dm / sm:.2f}x" for s, sm, dm in zip(sps, sparse_ms, dense_ms)))
    del wu, wg
    out["best_config"] = {f"{k}@{s:g}": c.record() for (k, s), c in best_cfg.items()}
    torch.cuda.empty_cache()
    # layers
    g1 = torch.Generator(device="cuda").manual_seed(1)
    layers = [_Layer(d, f, g1) for _ in range(n_layers)]
    x = torch.randn(d, device="cuda", dtype=torch.float16, generator=g1)
    att = torch.randn(d, device="cuda", dtype=torch.float16, generator=g1)
    shape_of = {"q": "qo", "o": "qo", "up": "up", "down": "down"}
    for s in ((0.0, 0.25, 0.5, 0.7, 0.9) if not quick else (0.0, 0.5)):
        t_x, t_att = threshold_for_sparsity(x.float().cpu(), s), threshold_for_sparsity(att.float().cpu(), s)
        ts_ffn = [threshold_for_sparsity(F.silu(F.linear(x, L.wg)).float().cpu(), s) for L in layers]
        cfg = {"q": best_cfg[("qo", s)], "o": best_cfg[("qo", s)], "down": best_cfg[("down", s)]}
        disp = dispatch_plan({n: s for n in shape_of}, shape_of, out["crossover"])
        plans = {"dense": None,
                 "cats": {"q": "off", "o": "off", "up": "sparse", "down": "sparse"},
                 "chess": {"q": "sparse", "o": "sparse", "up": "sparse", "down": "sparse"},
                 "cats_dispatch": {**disp, "q": "off", "o": "off"},
                 "chess_dispatch": disp}
        graphs, errors = {}, {}
        for k, plan in plans.items():
            fn = ((lambda: [_layer_dense(L, x, att) for L in layers]) if plan is None else
                  (lambda plan=plan: [_layer_planned(L, x, att, tf, t_x, t_att, plan, cfg) for L, tf in zip(layers, ts_ffn)]))
            try:
                graphs[k] = _capture(fn, 1)
            except Exception as e:  # pragma: no cover - device only
                errors[k] = repr(e)[:300]
        times = _interleaved_replays(graphs, rounds, f"dispatch layers s={s} plan {disp}", errors)
        out["points"].append({"sparsity": s, "plan": disp, "times_ms": times, "errors": errors,
                              "configs": {k: c.record() for k, c in cfg.items()}})
        del graphs
    del layers
    torch.cuda.empty_cache()
    return out


def semi_section(quick: bool, rounds: int) -> dict:
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    out = {"shapes": [list(s) for s in SEMI_SHAPES], "M": list(SEMI_M), "rounds": rounds, "points": [], "correctness": [],
           "timing": "eager: CUDA events around a loop of back-to-back calls (host overhead included when the host is "
                     "slower than the GPU); graph: the same calls captured in one CUDA graph and replayed"}
    g = torch.Generator(device="cuda").manual_seed(2)
    shapes = SEMI_SHAPES if not quick else SEMI_SHAPES[:1]
    Ms = SEMI_M if not quick else (1, 64, 4096)
    for (K, N) in shapes:
        for dt in (torch.float16, torch.bfloat16):
            w = torch.randn(N, K, device="cuda", dtype=dt, generator=g) / math.sqrt(K)
            w = w * two_four_mask(w)
            for backend in ("cusparselt", "cutlass"):
                SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
                name = f"{K}x{N}/{str(dt).split('.')[-1]}/{backend}"
                try:
                    ws = to_sparse_semi_structured(w)
                    xc = torch.randn(64, K, device="cuda", dtype=dt, generator=g)
                    ys, yd = F.linear(xc, ws), F.linear(xc, w)
                    torch.cuda.synchronize()
                    err = float((ys.double() - yd.double()).norm() / yd.double().norm())
                    out["correctness"].append({"case": name, "rel_err_vs_dense": err, "class": type(ws).__name__})
                except Exception as e:
                    out["correctness"].append({"case": name, "error": repr(e)[:300]})
                    _log(name, "failed:", repr(e)[:200])
                    continue
                for M in Ms:
                    x = torch.randn(M, K, device="cuda", dtype=dt, generator=g)
                    flops = 2 * M * K * N
                    calls = max(3, min(50, int(2e12 // max(flops, 1))))
                    rec = {"case": name, "K": K, "N": N, "M": M, "dtype": str(dt).split(".")[-1], "backend": backend,
                           "calls": calls, "times_ms": {}, "errors": {}}
                    fns = {"dense": lambda: F.linear(x, w), "sparse": lambda: F.linear(x, ws)}
                    for mode in ("eager", "graph"):
                        for k, fn in fns.items():
                            rec["times_ms"][f"{mode}_{k}"] = []
                        try:
                            if mode == "eager":
                                runners = {k: (lambda fn=fn: [fn() for _ in range(calls)]) for k, fn in fns.items()}
                            else:
                                runners = {k: _capture(fn, calls).replay for k, fn in fns.items()}
                            for k, r in runners.items():
                                r()
                            torch.cuda.synchronize()
                            for _ in range(rounds):
                                for k, r in runners.items():
                                    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                                    e0.record()
                                    r()
                                    e1.record()
                                    torch.cuda.synchronize()
                                    rec["times_ms"][f"{mode}_{k}"].append(e0.elapsed_time(e1) / calls)
                        except Exception as e:
                            rec["errors"][mode] = repr(e)[:300]
                    out["points"].append(rec)
                    tm = rec["times_ms"]
                    msg = " ".join(f"{mode} {_median(tm[mode + '_dense']) / _median(tm[mode + '_sparse']):.2f}x"
                                   for mode in ("eager", "graph") if tm.get(mode + "_sparse") and tm.get(mode + "_dense"))
                    _log(f"2:4 {name} M={M} {msg} {rec['errors'] or ''}")
            SparseSemiStructuredTensor._FORCE_CUTLASS = False
            del w
            torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="a short probe (few points, few repeats)")
    p.add_argument("--sections", default="gemv,layer,semi,dispatch",
                   help="comma-separated: gemv, layer, semi, dispatch (the chapter's first data file holds the "
                        "first three, book/data/sparse_kernels_dispatch_h200.json the last)")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 2
    outdir = Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res = {"environment": environment(), "quick": a.quick}
    res["copy"] = copy_bandwidth()
    _log("environment", res["environment"], f"copy {res['copy']['tbps']:.2f} TB/s")
    rounds = 3 if a.quick else 7
    secs = a.sections.split(",")
    path = outdir / "sparse_kernels_h200.json"

    def save():
        res["wall_s"] = round(time.time() - t0, 1)
        path.write_text(json.dumps(res, indent=None, separators=(",", ":")))

    for sec, fn in (("gemv", lambda: gemv_section(a.quick, rounds, 20 if a.quick else 40)),
                    ("layer", lambda: layer_section(a.quick, rounds, res.get("gemv", {"points": []}))),
                    ("semi", lambda: semi_section(a.quick, rounds)),
                    ("dispatch", lambda: dispatch_section(a.quick, rounds))):
        if sec not in secs:
            continue
        try:
            res[sec] = fn()
        except Exception:
            res[sec] = {"error": traceback.format_exc()[-2000:]}
            _log(sec, "FAILED", res[sec]["error"])
        save()
        _log(f"[{sec} done at {time.time() - t0:.0f} s]")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
