"""Optional cross-check: the sparse_autoencoders chapter's synthetic data and ground-truth metrics
against SAELens's ``sae_lens.synthetic`` (its ground-truth dictionaries, activation generator and
Hungarian MCC).

SAELens pulls in transformers, datasets, wandb and more, so it lives in its own environment,
``.venv-saelens`` (``pip install -e ".[saelens]"`` with the project's constraints, so NumPy, SciPy and
PyTorch are the same versions as in ``.venv``); the main environment never depends on it.  Both sides
run in that one process: ``make crosscheck-saelens`` or
``.venv-saelens/bin/python -m benchmarks.crosscheck_saelens``, which writes
``benchmarks/crosscheck_saelens.md``.  ``tests/test_sparse_autoencoders.py::test_saelens_crosscheck``
runs a small version of the same checks wherever ``sae_lens`` is importable (skipped in ``.venv``).

Two parts:

1. **Metrics on the same pairs** (deterministic; must agree to ``--tol``).  SAEs trained by the
   chapter's own trainer (``train_sae``, TopK, the chapter's ``AllocationConfig("ci")`` settings, uniform
   and Zipfian firing, 5 seeds) give learned decoders, codes and reconstructions on held-out data; on
   each we compute
   - dictionary MCC: ours ``hungarian_match(|cosine_matrix(D, W_dec)|)`` vs SAELens
     ``mean_correlation_coefficient(W_dec, D)`` (Hungarian on |cos| of decoder rows and true features);
   - activation MCC: ours ``hungarian_mcc(a, z)`` (Hungarian on |Pearson r| of true codes and latents)
     vs SAELens ``mean_correlation_coefficient`` applied to the centred columns (Pearson r is the cosine
     of centred columns; SAELens has no activation MCC of its own);
   - dead latents, L0 and explained variance: ours ``dead_fraction·m``, ``l0``, ``1 − fvu`` vs
     SAELens ``DeadLatentsCalculator``, ``L0Calculator``, ``ExplainedVarianceCalculator``;
   plus two planted pairs whose MCC is known: a signed permutation of the true dictionary (MCC = 1)
   and the true dictionary against an independent random one.
2. **Generators at the same settings** (statistical).  Firing probabilities: our
   ``firing_probabilities(F, p̄, zipf)`` is ``p_i = c·i^(−zipf)``; SAELens's
   ``zipfian_firing_probabilities(F, exponent, max_prob, min_prob)`` rescales ``i^(−exponent)`` affinely
   onto ``[min_prob, max_prob]``, which is the same law when ``max_prob = p_1`` and ``min_prob = p_F``
   (compared to float32 precision).  Activations: both generators drawn with the same probabilities
   and the same dictionary (our ``D`` loaded into SAELens's ``FeatureDictionary``), N samples each;
   per-feature firing rates, the mean and variance of L0, and ``E‖x‖²`` are compared with each other
   (two-sample z) and with their exact values (one-sample z).  With magnitude 1 (ours
   ``sparse_codes(low=high=1)``, SAELens ``mean=1, std=0``) the two laws are identical; with the
   chapter's default magnitudes (Uniform(0, 1)) SAELens has no uniform law and the nearest one
   (``relu(N(1/2, 1/12))``, same mean and variance before the ReLU) differs, which the table shows.
   Dictionaries: our ``random_dictionary`` and SAELens's ``FeatureDictionary(initializer=None)`` are
   both uniform on the sphere (mean off-diagonal cos² = 1/d exactly); SAELens's default
   ``orthogonal_initializer`` lowers the interference, also shown.

Float64 on both sides for the metrics; SAELens's generator works in float32.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1, 2, 3, 4)
N_SAMPLES = 200_000
Z_MAX = 4.0           # |z| above this flags a statistical disagreement (about 6e-5 two-sided per comparison)


# ---------------------------------------------------------------------------
# 1. metrics on the same pairs
# ---------------------------------------------------------------------------
def _their_mcc(a, b) -> float:
    from sae_lens.synthetic import mean_correlation_coefficient
    return mean_correlation_coefficient(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))


def metric_rows(seeds=SEEDS, steps: int | None = None) -> list[dict]:
    """Per firing law and seed: our metric and SAELens's on the same trained SAE and held-out data."""
    from sae_lens.evals import ExplainedVarianceCalculator
    from sae_lens.synthetic import DeadLatentsCalculator, L0Calculator

    from sparsebook import sparse_autoencoders as sa
    from sparsebook.sparse_autoencoders import experiments as ex
    from sparsebook.sparse_autoencoders import kernels as K

    cfg = sa.AllocationConfig.preset("ci")
    steps = cfg.steps if steps is None else steps
    rows = []
    for law, zipf in (("uniform", 0.0), ("zipf", cfg.zipf)):
        data = [sa.superposition(cfg.n_train + cfg.n_eval, cfg.n_features, cfg.dim, cfg.mean_p, zipf,
                                 np.random.default_rng(1000 * (zipf > 0) + s)) for s in seeds]
        x = torch.tensor(np.stack([d["x"] for d in data]))
        xt, xe = x[:, : cfg.n_train], x[:, cfg.n_train:]
        out = sa.train_sae(xt, xt, m=cfg.m, k=cfg.k, steps=steps, lr=cfg.lr, batch=cfg.batch, seed=seeds[0])
        z, xhat = ex.encode_eval(out["params"], xe, "topk", cfg.k, cfg.batch)
        W = out["params"]["W_dec"].double()
        for i, s in enumerate(seeds):
            D, a = data[i]["D"], data[i]["a"][cfg.n_train:][: z.shape[1]]
            zi, xi, hi = z[i].double(), xe[i, : z.shape[1]].double(), xhat[i].double()
            ac, zc = a - a.mean(0), zi.numpy() - zi.numpy().mean(0)
            dead, l0c, ev = DeadLatentsCalculator(cfg.m), L0Calculator(), ExplainedVarianceCalculator()
            dead.add_batch(zi)
            l0c.add_batch(zi)
            ev.add_batch(hi, xi)
            rows.append({
                "law": law, "seed": s,
                "dict_mcc": (K.hungarian_match(np.abs(K.cosine_matrix(D, W[i])))[0], _their_mcc(W[i], D)),
                "act_mcc": (K.hungarian_mcc(a, zi), _their_mcc(ac.T, zc.T)),
                "dead": (float(K.dead_fraction(zi)) * cfg.m, float(dead.compute())),
                "l0": (float(K.l0(zi)), l0c.compute()),
                "ev": (1 - float(K.fvu(xi, hi)), ev.compute()),
            })
    # planted pairs with a known answer
    rng = np.random.default_rng(7)
    D = ex.random_dictionary(cfg.n_features, cfg.dim, rng)
    perm = D[rng.permutation(len(D))] * rng.choice([-1.0, 1.0], (len(D), 1))
    R = ex.random_dictionary(2 * cfg.n_features, cfg.dim, rng)
    rows.append({"law": "planted: signed permutation of D", "seed": 7,
                 "dict_mcc": (K.hungarian_match(np.abs(K.cosine_matrix(D, perm)))[0], _their_mcc(perm, D))})
    rows.append({"law": "planted: D vs a random 2F dictionary", "seed": 7,
                 "dict_mcc": (K.hungarian_match(np.abs(K.cosine_matrix(D, R)))[0], _their_mcc(R, D))})
    return rows


# ---------------------------------------------------------------------------
# 2. generators at the same settings
# ---------------------------------------------------------------------------
def _z(a: float, se: float, b: float) -> float:
    return (a - b) / se if se > 0 else (0.0 if a == b else math.inf)


def _stats(codes: np.ndarray, x: np.ndarray) -> dict:
    """Sample means and their standard errors: firing rates, L0, Var L0 (delta method), E‖x‖²."""
    n = len(codes)
    fire = codes > 0
    l0 = fire.sum(1).astype(float)
    sq = (x.astype(float) ** 2).sum(1)
    c = l0 - l0.mean()
    return {"rate": fire.mean(0), "rate_se": np.sqrt(fire.mean(0) * (1 - fire.mean(0)) / n),
            "l0": l0.mean(), "l0_se": l0.std(ddof=1) / math.sqrt(n),
            "var_l0": l0.var(ddof=1), "var_l0_se": (c ** 2).std(ddof=1) / math.sqrt(n),
            "sq": sq.mean(), "sq_se": sq.std(ddof=1) / math.sqrt(n),
            "mag_mean": float(codes[codes > 0].mean()), "mag_var": float(codes[codes > 0].var())}


def generator_rows(n: int = N_SAMPLES, seed: int = 0) -> tuple[list[dict], list[dict], list[dict]]:
    """Probabilities, activation statistics and dictionary statistics, ours against SAELens's."""
    from sae_lens.synthetic import (ActivationGenerator, ConstantFiringProbabilityConfig, FeatureDictionary,
                                    zipfian_firing_probabilities)

    from sparsebook import sparse_autoencoders as sa
    from sparsebook.sparse_autoencoders import experiments as ex

    cfg = sa.AllocationConfig.preset("ci")
    F, d = cfg.n_features, cfg.dim
    prob_rows, act_rows, dict_rows = [], [], []
    for law, zipf in (("uniform", 0.0), ("zipf", cfg.zipf)):
        p = ex.firing_probabilities(F, cfg.mean_p, zipf)
        if zipf > 0:
            theirs = zipfian_firing_probabilities(F, exponent=zipf, max_prob=float(p[0]), min_prob=float(p[-1])).double().numpy()
        else:
            theirs = ConstantFiringProbabilityConfig(probability=cfg.mean_p).generate(F).double().numpy()
        prob_rows.append({"law": law, "max_rel": float(np.max(np.abs(theirs - p) / p)), "p1": float(p[0]), "pF": float(p[-1])})
        rng = np.random.default_rng(seed + 10 * (zipf > 0))
        D = ex.random_dictionary(F, d, rng)
        fd = FeatureDictionary(F, d, initializer=None)
        with torch.no_grad():
            fd.feature_vectors.copy_(torch.tensor(D, dtype=torch.float32))
        for mags, (low, high), (mu, sd) in (("magnitude 1", (1.0, 1.0), (1.0, 0.0)),
                                           ("Uniform(0,1) vs relu(N(1/2, 1/12))", (0.0, 1.0), (0.5, math.sqrt(1 / 12)))):
            a_ours = ex.sparse_codes(n, p, rng, low, high)
            x_ours = a_ours @ D
            torch.manual_seed(seed)
            gen = ActivationGenerator(F, torch.tensor(p, dtype=torch.float32), std_firing_magnitudes=sd, mean_firing_magnitudes=mu)
            with torch.no_grad():
                a_t = gen.sample(n)
                x_t = fd(a_t).double().numpy()
            a_t = a_t.double().numpy()
            o, t = _stats(a_ours, x_ours), _stats(a_t, x_t)
            # exact values of our law: E[m] and E[m²] of the magnitude, given firing
            em, em2 = (low + high) / 2, (low * low + low * high + high * high) / 3
            G = D @ D.T
            sq_exact = float(em2 * p.sum() + em * em * (p @ G @ p - (p * p * np.diag(G)).sum()))
            rate_z = np.abs(o["rate"] - t["rate"]) / np.sqrt(o["rate_se"] ** 2 + t["rate_se"] ** 2)
            two = lambda q: _z(o[q], math.hypot(o[q + "_se"], t[q + "_se"]), t[q])  # noqa: E731
            act_rows.append({
                "law": law, "magnitudes": mags, "n": n, "same_law": sd == 0.0,
                "rate_maxz": float(rate_z.max()),
                "l0": (o["l0"], t["l0"], float(p.sum())), "l0_z": (two("l0"), _z(o["l0"], o["l0_se"], p.sum()), _z(t["l0"], t["l0_se"], p.sum())),
                "var_l0": (o["var_l0"], t["var_l0"], float((p * (1 - p)).sum())),
                "var_l0_z": (two("var_l0"), _z(o["var_l0"], o["var_l0_se"], (p * (1 - p)).sum()),
                             _z(t["var_l0"], t["var_l0_se"], (p * (1 - p)).sum())),
                "sq": (o["sq"], t["sq"], sq_exact), "sq_z": (two("sq"), _z(o["sq"], o["sq_se"], sq_exact), _z(t["sq"], t["sq_se"], sq_exact)),
                "mag": ((o["mag_mean"], o["mag_var"]), (t["mag_mean"], t["mag_var"])),
                # a SAELens feature whose relu'd magnitude is 0 fired but contributes nothing: its share of firings
                "lost": 1.0 - t["l0"] / o["l0"],
            })
            # the mapping: SAELens's FeatureDictionary on our codes is our x = a D
            with torch.no_grad():
                back = fd(torch.tensor(a_ours[:1000], dtype=torch.float32)).double().numpy()
            act_rows[-1]["map_maxdiff"] = float(np.abs(back - x_ours[:1000]).max())
        # dictionaries: pairwise interference
        for name, make in (("ours: random_dictionary", lambda s: ex.random_dictionary(F, d, np.random.default_rng(s))),
                           ("SAELens: FeatureDictionary(initializer=None)",
                            lambda s: FeatureDictionary(F, d, initializer=None, seed=s).feature_vectors.detach().double().numpy()),
                           ("SAELens: FeatureDictionary() (orthogonal_initializer)",
                            lambda s: FeatureDictionary(F, d, seed=s).feature_vectors.detach().double().numpy())):
            if law != "uniform":
                continue
            c2, mx, norms = [], [], []
            for s in range(5):
                V = make(s)
                C = V @ V.T
                off = C[~np.eye(F, dtype=bool)]
                c2.append(float((off ** 2).mean()))
                mx.append(float(np.abs(off).max()))
                norms.append(float(np.abs(np.linalg.norm(V, axis=1) - 1).max()))
            dict_rows.append({"name": name, "cos2": float(np.mean(c2)), "cos2_se": float(np.std(c2, ddof=1) / math.sqrt(5)),
                              "maxcos": float(np.mean(mx)), "norm_dev": float(max(norms))})
    return prob_rows, act_rows, dict_rows


# ---------------------------------------------------------------------------
# verdicts and the report
# ---------------------------------------------------------------------------
METRICS = ("dict_mcc", "act_mcc", "dead", "l0", "ev")


def failures(metrics: list[dict], probs: list[dict], acts: list[dict], tol: float = 1e-9) -> list[str]:
    """What disagrees: a metric beyond ``tol``, a probability beyond float32 precision, a same-law
    statistic beyond ``Z_MAX`` (each other or the exact value), the mapping beyond float32 precision,
    or a planted MCC away from its known value."""
    bad = []
    for r in metrics:
        for q in METRICS:
            if q in r and abs(r[q][0] - r[q][1]) > tol * max(1.0, abs(r[q][1])):
                bad.append(f"{q} {r['law']} seed {r['seed']}: ours {r[q][0]!r} vs SAELens {r[q][1]!r}")
    planted = [r for r in metrics if r["law"].startswith("planted: signed")]
    if planted and abs(planted[0]["dict_mcc"][0] - 1) > 1e-9:
        bad.append(f"MCC of a signed permutation is {planted[0]['dict_mcc'][0]}, not 1")
    bad += [f"firing probabilities {r['law']}: max rel diff {r['max_rel']:.1e}" for r in probs if r["max_rel"] > 1e-5]
    for r in acts:
        if r["map_maxdiff"] > 1e-5:
            bad.append(f"FeatureDictionary(a) vs a @ D: max diff {r['map_maxdiff']:.1e}")
        # ours against its exact values always; against SAELens (and SAELens against exact) where the laws coincide
        zs = [r["l0_z"][1], r["var_l0_z"][1], r["sq_z"][1]]
        if r["same_law"]:
            zs += [r["rate_maxz"], r["l0_z"][0], r["l0_z"][2], r["var_l0_z"][0], r["var_l0_z"][2], r["sq_z"][0], r["sq_z"][2]]
        if max(abs(v) for v in zs) > Z_MAX:
            bad.append(f"generator {r['law']}, {r['magnitudes']}: a |z| above {Z_MAX}: {[round(v, 2) for v in zs]}")
    return bad


def render(metrics, probs, acts, dicts, seconds: float, tol: float) -> str:
    import sae_lens
    import scipy

    import sparsebook.sparse_autoencoders as sa
    cfg = sa.AllocationConfig.preset("ci")
    lines = ["# Cross-check against SAELens's synthetic-data tools (optional)\n",
             f"Generated by `make crosscheck-saelens` on {time.strftime('%Y-%m-%d')} in {seconds:.0f} s, in `.venv-saelens`: "
             f"sae-lens {sae_lens.__version__}, PyTorch {torch.__version__}, NumPy {np.__version__}, SciPy {scipy.__version__} "
             "(the same NumPy, SciPy and PyTorch as `.venv`, from `constraints.txt`). Ours: `sparsebook.sparse_autoencoders`; "
             "theirs: `sae_lens.synthetic` (and `sae_lens.evals.ExplainedVarianceCalculator`). "
             "What is compared and why is in the docstring of `benchmarks/crosscheck_saelens.py`.\n",
             "## 1. Metrics on the same learned/true pairs\n",
             f"TopK SAEs trained by the chapter's `train_sae` at `AllocationConfig('ci')` (F = {cfg.n_features} features in "
             f"d = {cfg.dim}, m = {cfg.m} latents, k = {cfg.k}, mean firing {cfg.mean_p}), {len(SEEDS)} seeds per firing law, evaluated on "
             f"{cfg.n_eval} held-out tokens. Each row: ours / SAELens, mean over seeds, and the largest |ours − SAELens| over seeds "
             f"(the script fails above {tol:g}, relative).\n",
             "| data | dictionary MCC | activation MCC | dead latents | L0 | explained variance | max abs diff |",
             "|---|---|---|---|---|---|---|"]
    for law in ("uniform", "zipf"):
        rs = [r for r in metrics if r["law"] == law]
        cell = lambda q: f"{np.mean([r[q][0] for r in rs]):.4f} / {np.mean([r[q][1] for r in rs]):.4f}"  # noqa: E731
        worst = max(abs(r[q][0] - r[q][1]) for r in rs for q in METRICS)
        lines.append(f"| {law} firing, {len(rs)} seeds | {cell('dict_mcc')} | {cell('act_mcc')} | {cell('dead')} | {cell('l0')} "
                     f"| {cell('ev')} | {worst:.1e} |")
    for r in metrics:
        if r["law"].startswith("planted"):
            lines.append(f"| {r['law']} | {r['dict_mcc'][0]:.6f} / {r['dict_mcc'][1]:.6f} | | | | | "
                         f"{abs(r['dict_mcc'][0] - r['dict_mcc'][1]):.1e} |")
    lines += ["", "The two libraries' MCCs are different quantities that share the Hungarian step: SAELens's "
              "`mean_correlation_coefficient` matches decoder rows to true features by |cosine| (our dictionary MCC, "
              "`hungarian_match(|cosine_matrix|)`); our `hungarian_mcc` matches latents to true codes by |Pearson r|, which "
              "SAELens's function reproduces when given the centred code columns.\n",
              "## 2. Generators at the same settings\n",
              "Firing probabilities (ours `firing_probabilities(F, p̄, zipf)`; SAELens `zipfian_firing_probabilities(F, zipf, "
              "max_prob=p_1, min_prob=p_F)`, or `ConstantFiringProbabilityConfig(p̄)` for uniform firing; SAELens works in float32):\n",
              "| firing | p_1 | p_F | max relative difference |", "|---|---|---|---|"]
    lines += [f"| {r['law']} | {r['p1']:.4g} | {r['pF']:.4g} | {r['max_rel']:.1e} |" for r in probs]
    n = acts[0]["n"]
    lines += ["", f"Activations: {n:,} samples from each generator with the same probabilities and the same dictionary D "
              "(ours `sparse_codes` then `a @ D`; SAELens `ActivationGenerator.sample` then `FeatureDictionary` holding D). "
              "Each statistic: ours, SAELens, exact value of our law; then z of ours − SAELens, of ours − exact and of "
              "SAELens − exact (standard errors from the samples). `lost` is the share of our L0 that SAELens's draws lack "
              "(firings whose ReLU'd magnitude is 0).\n",
              "| firing | magnitudes | max z, per-feature rates | L0 (ours, SAELens, exact) | z | Var L0 | z | E‖x‖² | z | magnitude mean, var (ours; SAELens) | lost |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    f3 = lambda t: ", ".join(f"{v:.4g}" for v in t)   # noqa: E731
    z3 = lambda t: ", ".join(f"{v:+.1f}" for v in t)  # noqa: E731
    for r in acts:
        (om, ov), (tm, tv) = r["mag"]
        lines.append(f"| {r['law']} | {r['magnitudes']} | {r['rate_maxz']:.2f} | {f3(r['l0'])} | {z3(r['l0_z'])} | {f3(r['var_l0'])} "
                     f"| {z3(r['var_l0_z'])} | {f3(r['sq'])} | {z3(r['sq_z'])} | {om:.3f}, {ov:.4f}; {tm:.3f}, {tv:.4f} | {r['lost']:.3f} |")
    worst_map = max(r["map_maxdiff"] for r in acts)
    lines += ["", f"SAELens's `FeatureDictionary` applied to our codes reproduces our `a @ D` to {worst_map:.1e} (float32). "
              f"With magnitude 1 the two generators draw the same law, and every z stays below {Z_MAX:g} in absolute value "
              "(the script fails otherwise). With the chapter's Uniform(0, 1) magnitudes SAELens offers only ReLU'd normals: "
              "at the same mean and variance before the ReLU, some firings come out 0 (`lost`, P(N(1/2, 1/12) ≤ 0) ≈ 0.042 "
              "expected), so SAELens's L0 and E‖x‖² fall below our law's exact values and SAELens's generator is not a "
              "drop-in for ours there; that row only checks ours against its own closed forms.\n",
              f"Dictionaries (F = {cfg.n_features} in d = {cfg.dim}, 5 draws; mean off-diagonal cos² is 1/d = {1 / cfg.dim:.4g} "
              "for directions uniform on the sphere):\n",
              "| generator | mean cos² (± se) | mean max abs cos | max abs(norm − 1) |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['cos2']:.4f} ± {r['cos2_se']:.4f} | {r['maxcos']:.3f} | {r['norm_dev']:.1e} |" for r in dicts]
    lines += ["", "SAELens's default dictionary is orthogonalised by gradient descent, so its features interfere less than "
              "random unit vectors; ours (and SAELens's `initializer=None`) are random unit vectors, the superposition the "
              "chapter's papers train on.\n",
              "Re-run (needs network once, to build `.venv-saelens`; not part of `make test`, `make book` or `make bench`):\n",
              "```bash\nmake crosscheck-saelens\n# or, with the environment present:\n"
              ".venv-saelens/bin/python -m benchmarks.crosscheck_saelens\n"
              ".venv-saelens/bin/python -m pytest tests/test_sparse_autoencoders.py -k saelens -q -p no:cacheprovider\n```\n"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--md", default=str(HERE / "crosscheck_saelens.md"))
    p.add_argument("--tol", type=float, default=1e-9, help="fail if a metric differs by more (relative)")
    p.add_argument("--samples", type=int, default=N_SAMPLES)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    metrics = metric_rows()
    probs, acts, dicts = generator_rows(a.samples)
    text = render(metrics, probs, acts, dicts, time.time() - t0, a.tol)
    print(text)
    Path(a.md).write_text(text)
    bad = failures(metrics, probs, acts, a.tol)
    for b in bad:
        print("FAILED:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
