"""Optional cross-check: our infinite-width kernels (``sparsebook.rg_flow``) against the analytic
NNGP/NTK of neural-tangents (``neural_tangents.stax``), for linear, ReLU and erf MLPs.

neural-tangents needs an old JAX (and TensorFlow), so it lives in its own environment, ``.venv-nt``,
and the main environment never depends on it.  The check runs in three steps, each in the right env:

1. ``ours``   (main env, ``.venv``):    ``rg_flow.kernel_flow``, ``ntk_flow``, ``two_input_flow`` -> JSON;
2. ``theirs`` (nt env, ``.venv-nt``):   ``stax.serial(Dense, σ, Dense, ...)`` ``kernel_fn`` -> JSON;
3. ``compare`` (either env, stdlib only): max relative differences -> table, written to
   ``benchmarks/crosscheck_neural_tangents.md``.

``python -m benchmarks.crosscheck_neural_tangents`` with no sub-command (``make crosscheck-nt``) runs
all three, starting the two halves as subprocesses with ``--main-python`` and ``--nt-python``.

Conventions (matched explicitly, no fudge factors remain):

* NNGP.  Ours: ``b ~ N(0, C_b)``, ``W ~ N(0, C_W/n_{l-1})``, so ``K^(1) = C_b + C_W x·x'/n_0``.
  neural-tangents' ``Dense(W_std, b_std)`` (either parameterization) gives
  ``K^(1) = b_std² + W_std² x·x'/n_0``; hence ``W_std = √C_W``, ``b_std = √C_b``, and layer ``l`` of ours
  is the output of the ``l``-th ``Dense`` of ``Dense, σ, Dense, σ, ..., Dense``.
* NTK.  Ours (PDLT eq. 8.63 with learning rates ``λ_b`` for biases and ``λ_W/n_{l-1}`` for weights):
  ``Θ^(l+1) = λ_b + λ_W ⟨σ²⟩_{K^(l)} + χ⊥ Θ^(l)``, ``Θ^(1) = λ_b + λ_W |x|²/n_0``.
  neural-tangents with ``parameterization='ntk'`` (its default) differentiates with respect to the
  standardized parameters ``ω ~ N(0, 1)`` of ``W = W_std ω/√n``, ``b = b_std β``, which is the same NTK
  with ``λ_b = C_b`` and ``λ_W = C_W`` (then ``Θ^(1) = K^(1)``).  We pass those values to ``ntk_flow``.
  (Its ``parameterization='standard'`` differentiates with respect to ``W`` itself, a different
  per-layer learning-rate tensor, ``λ_W = 1`` without the ``1/n`` — not compared here.)
* Off-diagonal: ``two_input_flow`` gives ``K11, K22, K12``; we compare both of its methods
  (``"closed"``: arc-cosine / arcsine kernels; ``"quadrature"``: 400² trapezoidal nodes).  ``K12`` is
  compared in correlation units, ``|ΔK12| / √(K11 K22)``, because it passes through zero for obtuse
  angles (erf, C_b = 0); the diagonal and the NTK are compared by plain relative difference.

Both sides run in float64.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEPTH = 50
N0 = 2                      # input dimension (x lives in a plane: enough for any angle)
Q1, Q2 = 1.0, 0.5           # |x1|²/n0 and |x2|²/n0
COSINES = (0.95, 0.5, 0.0, -0.5)  # cos of the angle between x1 and x2
ACTIVATIONS = ("linear", "relu", "erf")


def _cases(crit: dict) -> list[dict]:
    """Parameter points per activation: critical (from our ``critical_point``) and one on each side."""
    off = {"linear": [(0.1, 0.8), (0.1, 1.2)],
           "relu": [(0.1, 1.5), (0.1, 2.5)],
           "erf": [(0.0, 0.5), (0.5, 3.0)]}
    out = []
    for act in ACTIVATIONS:
        c_b, c_w = crit[act]
        out.append({"activation": act, "point": "critical", "c_b": c_b, "c_w": c_w})
        for label, (cb, cw) in zip(("ordered side", "chaotic side"), off[act]):
            out.append({"activation": act, "point": label, "c_b": cb, "c_w": cw})
    return out


def _inputs():
    """Rows: x1, then x2 at each angle; ``|x1|²/n0 = Q1``, ``|x2|²/n0 = Q2``."""
    rows = [[math.sqrt(N0 * Q1), 0.0]]
    for c in COSINES:
        s = math.sqrt(max(0.0, 1.0 - c * c))
        rows.append([math.sqrt(N0 * Q2) * c, math.sqrt(N0 * Q2) * s])
    return rows


# ---------------------------------------------------------------------------
# 1. ours (main env)
# ---------------------------------------------------------------------------


def compute_ours(depth: int) -> dict:
    from sparsebook import rg_flow as rg
    import jax
    import numpy as np

    crit = {a: tuple(float(v) for v in rg.critical_point(a)[:2]) for a in ACTIVATIONS}
    cases = _cases(crit)
    for case in cases:
        act, c_b, c_w = case["activation"], case["c_b"], case["c_w"]
        k1, k2 = c_b + c_w * Q1, c_b + c_w * Q2
        case["K_x1"] = np.asarray(rg.kernel_flow(act, c_b, c_w, k1, depth)).tolist()
        case["K_x2"] = np.asarray(rg.kernel_flow(act, c_b, c_w, k2, depth)).tolist()
        # neural-tangents' NTK parameterization == ours with λ_b = C_b, λ_W = C_W (module docstring).
        case["Theta_x1"] = np.asarray(rg.ntk_flow(act, c_b, c_w, k1, depth, lambda_b=c_b, lambda_w=c_w)).tolist()
        case["Theta_x2"] = np.asarray(rg.ntk_flow(act, c_b, c_w, k2, depth, lambda_b=c_b, lambda_w=c_w)).tolist()
        for method in ("closed", "quadrature"):
            case[f"pair_{method}"] = [
                np.asarray(rg.two_input_flow(act, c_b, c_w, k1, k2, c_b + c_w * math.sqrt(Q1 * Q2) * c, depth,
                                             method=method)).tolist()
                for c in COSINES]
    return {"versions": {"jax": jax.__version__, "numpy": np.__version__}, "depth": depth, "cases": cases}


# ---------------------------------------------------------------------------
# 2. theirs (nt env)
# ---------------------------------------------------------------------------


def compute_theirs(cases: list[dict], depth: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import neural_tangents as nt
    from neural_tangents import stax

    x = np.asarray(_inputs(), dtype=np.float64)
    nonlin = {"linear": stax.Identity, "relu": stax.Relu, "erf": stax.Erf}  # Erf() is erf(z)
    out = []
    for case in cases:
        w_std, b_std = math.sqrt(case["c_w"]), math.sqrt(case["c_b"])
        _, _, first = stax.Dense(1, W_std=w_std, b_std=b_std, parameterization="ntk")
        _, _, block = stax.serial(nonlin[case["activation"]](),
                                  stax.Dense(1, W_std=w_std, b_std=b_std, parameterization="ntk"))
        # Layer by layer: kernel_fn of a block maps a Kernel to a Kernel, so depth l costs one step.
        kern = first(x, None)
        nngp, ntk = [], []
        for _ in range(depth):
            nngp.append(np.asarray(kern.nngp, dtype=np.float64).tolist())
            ntk.append(np.asarray(kern.ntk, dtype=np.float64).tolist())
            kern = block(kern)
        out.append({k: case[k] for k in ("activation", "point", "c_b", "c_w")} | {"nngp": nngp, "ntk": ntk})
    # A spot check that the layer-by-layer composition is the same as one stax.serial of depth 3.
    c0 = cases[0]
    layers = [stax.Dense(1, W_std=math.sqrt(c0["c_w"]), b_std=math.sqrt(c0["c_b"]))]
    for _ in range(2):
        layers += [{"linear": stax.Identity, "relu": stax.Relu, "erf": stax.Erf}[c0["activation"]](),
                   stax.Dense(1, W_std=math.sqrt(c0["c_w"]), b_std=math.sqrt(c0["c_b"]))]
    whole = stax.serial(*layers)[2](x, None, ("nngp", "ntk"))
    comp = max(abs(whole.nngp[i, j] - out[0]["nngp"][2][i][j]) + abs(whole.ntk[i, j] - out[0]["ntk"][2][i][j])
               for i in range(len(x)) for j in range(len(x)))
    if comp > 1e-12 * (1 + float(np.max(np.abs(whole.ntk)))):
        raise AssertionError(f"layer-by-layer composition differs from stax.serial by {comp}")
    return {"versions": {"neural-tangents": nt.__version__, "jax": jax.__version__, "numpy": np.__version__},
            "cases": out}


# ---------------------------------------------------------------------------
# 3. compare (stdlib only)
# ---------------------------------------------------------------------------


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def compare(ours: dict, theirs: dict) -> list[dict]:
    rows = []
    for o, t in zip(ours["cases"], theirs["cases"]):
        if (o["activation"], o["point"], o["c_b"], o["c_w"]) != (t["activation"], t["point"], t["c_b"], t["c_w"]):
            raise ValueError("ours and theirs list different cases")
        depth = len(t["nngp"])
        K = {1: [t["nngp"][l][0][0] for l in range(depth)], 2: [t["nngp"][l][1][1] for l in range(depth)]}
        Th = {1: [t["ntk"][l][0][0] for l in range(depth)], 2: [t["ntk"][l][1][1] for l in range(depth)]}
        r_k = max(_rel(o[f"K_x{i}"][l], K[i][l]) for i in (1, 2) for l in range(depth))
        r_th = max(_rel(o[f"Theta_x{i}"][l], Th[i][l]) for i in (1, 2) for l in range(depth))
        r_pair = {}
        for method in ("closed", "quadrature"):
            diag = off = 0.0
            for a, pair in enumerate(o[f"pair_{method}"]):  # a-th angle: input row a + 1
                for l in range(depth):
                    k11, k22, k12 = t["nngp"][l][0][0], t["nngp"][l][a + 1][a + 1], t["nngp"][l][0][a + 1]
                    diag = max(diag, _rel(pair[l][0], k11), _rel(pair[l][1], k22))
                    off = max(off, abs(pair[l][2] - k12) / math.sqrt(k11 * k22))
            r_pair[method] = (diag, off)
        rows.append({"activation": o["activation"], "point": o["point"], "c_b": o["c_b"], "c_w": o["c_w"],
                     "K": r_k, "Theta": r_th,
                     "pair_closed_diag": r_pair["closed"][0], "K12_closed": r_pair["closed"][1],
                     "pair_quad_diag": r_pair["quadrature"][0], "K12_quad": r_pair["quadrature"][1]})
    return rows


def render(rows: list[dict], ours: dict, theirs: dict, seconds: float) -> str:
    v_t, v_o = theirs["versions"], ours["versions"]
    head = ("| σ | point | C_b | C_W | K^(l) | Θ^(l) | two_input_flow closed: K11,K22 | closed: K12 "
            "| quadrature: K11,K22 | quadrature: K12 |\n|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['activation']} | {r['point']} | {r['c_b']:.4g} | {r['c_w']:.4g} | {r['K']:.1e} | {r['Theta']:.1e} "
        f"| {r['pair_closed_diag']:.1e} | {r['K12_closed']:.1e} | {r['pair_quad_diag']:.1e} | {r['K12_quad']:.1e} |\n"
        for r in rows)
    worst = {q: max(r[q] for r in rows) for q in ("K", "Theta", "K12_closed", "K12_quad")}
    return (
        "# Cross-check against neural-tangents (optional)\n\n"
        f"Generated by `make crosscheck-nt` on {time.strftime('%Y-%m-%d')} in {seconds:.0f} s. "
        f"Ours: `sparsebook.rg_flow` in `.venv` (JAX {v_o['jax']}, NumPy {v_o['numpy']}). "
        f"Theirs: neural-tangents {v_t['neural-tangents']} analytic `stax` kernels in `.venv-nt` "
        f"(JAX {v_t['jax']}, NumPy {v_t['numpy']}), float64 on both sides.\n\n"
        f"MLPs `Dense, σ, Dense, ..., Dense` of depth l = 1..{ours['depth']} (l Dense layers), "
        f"`W_std = √C_W`, `b_std = √C_b`, `parameterization='ntk'`; inputs in n0 = {N0} dimensions with "
        f"|x1|²/n0 = {Q1}, |x2|²/n0 = {Q2}, cos∠(x1, x2) ∈ {{{', '.join(str(c) for c in COSINES)}}}. "
        "Our NTK is `ntk_flow(..., lambda_b=C_b, lambda_w=C_W)`, which is neural-tangents' NTK "
        "parameterization (see the script's docstring). Critical points come from our `critical_point`.\n\n"
        "Entries are maxima over depths (and both inputs / all angles): plain relative difference for "
        "K^(l), Θ^(l) and the pair's diagonal; |ΔK12|/√(K11 K22) for the off-diagonal.\n\n"
        + head + body +
        f"\nWorst over all cases: K {worst['K']:.1e}, Θ {worst['Theta']:.1e}, "
        f"K12 (closed forms) {worst['K12_closed']:.1e}, K12 (quadrature) {worst['K12_quad']:.1e}. "
        "ReLU's quadrature K12 (about 1e-4) is the documented accuracy of `two_input_flow(method=\"quadrature\")`, "
        "whose grid does not resolve ReLU's kink; the script fails if K, Θ or the closed-form K12 differ by "
        "more than `--tol` (1e-6).\n\n"
        "Re-run (needs network once, to build `.venv-nt`; not part of `make test`, `make book` or `make bench`):\n\n"
        "```bash\nmake crosscheck-nt\n# or, with both environments present:\n"
        ".venv/bin/python -m benchmarks.crosscheck_neural_tangents --main-python .venv/bin/python "
        "--nt-python .venv-nt/bin/python\n```\n")


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def _run(python: str, args: list[str]) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([python, "-m", "benchmarks.crosscheck_neural_tangents", *args], cwd=ROOT, env=env, check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", nargs="?", choices=("all", "ours", "theirs"), default="all")
    p.add_argument("--depth", type=int, default=DEPTH)
    p.add_argument("--ours", help="JSON written by the 'ours' step (input of 'theirs')")
    p.add_argument("--out", help="where the 'ours' / 'theirs' step writes its JSON")
    p.add_argument("--main-python", default=str(ROOT / ".venv" / "bin" / "python"))
    p.add_argument("--nt-python", default=str(ROOT / ".venv-nt" / "bin" / "python"))
    p.add_argument("--md", default=str(HERE / "crosscheck_neural_tangents.md"))
    p.add_argument("--tol", type=float, default=1e-6, help="fail if K, Θ or closed-form K12 differ by more")
    a = p.parse_args(argv)
    if a.step == "ours":
        Path(a.out).write_text(json.dumps(compute_ours(a.depth)))
        return 0
    if a.step == "theirs":
        ours = json.loads(Path(a.ours).read_text())
        Path(a.out).write_text(json.dumps(compute_theirs(ours["cases"], ours["depth"])))
        return 0
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        f_ours, f_theirs = str(Path(tmp) / "ours.json"), str(Path(tmp) / "theirs.json")
        _run(a.main_python, ["ours", "--depth", str(a.depth), "--out", f_ours])
        _run(a.nt_python, ["theirs", "--ours", f_ours, "--out", f_theirs])
        ours, theirs = json.loads(Path(f_ours).read_text()), json.loads(Path(f_theirs).read_text())
    rows = compare(ours, theirs)
    text = render(rows, ours, theirs, time.time() - t0)
    print(text)
    Path(a.md).write_text(text)
    bad = [r for r in rows if max(r["K"], r["Theta"], r["K12_closed"]) > a.tol]
    if bad:
        print(f"FAILED: {len(bad)} case(s) differ by more than {a.tol:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
