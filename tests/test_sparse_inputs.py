"""Tests for sparsebook.sparse_inputs: DIN's kernels, the multigrid transfer operators, the Darcy
solvers against closed forms, the runners on tiny configs, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from sparsebook import sparse_inputs as si
from sparsebook.claims import AtLeast, ClaimSet
from sparsebook.stats import from_seeds, paired_difference

FAST = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------------------
# DIN: local activation unit, pooling, Dice, MBA, AUC
# ---------------------------------------------------------------------------
def test_weighted_pool_hand_computed_and_not_normalised():
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    w = torch.tensor([2.0, 0.5, -1.0])
    assert si.weighted_pool(e, w).tolist() == [2.0 - 3.0, 1.0 - 3.0]
    # doubling every weight doubles the output: no softmax
    assert torch.equal(si.weighted_pool(e, 2 * w), 2 * si.weighted_pool(e, w))
    mask = torch.tensor([True, True, False])
    assert si.weighted_pool(e, w, mask).tolist() == [2.0, 1.0]
    assert si.sum_pool(e).tolist() == [4.0, 5.0]
    assert si.mean_pool(e, mask).tolist() == [0.5, 1.0]


def test_activation_unit_input_layout():
    e = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    v = torch.tensor([10.0, 20.0])
    z = si.activation_unit_input(e, v)
    assert z.tolist() == [[1, 2, 10, 20, 10, 40, -9, -18], [3, 4, 10, 20, 30, 80, -7, -16]]


def test_din_attention_is_candidate_dependent_and_unnormalised():
    net = si.CTRNet([0], n_items=10, dim=4, pool="din")
    hist = torch.tensor([[[1, 2, 3]]])
    e = net.embed(hist)
    w1 = net.attention(e, net.embed(torch.tensor([[4]])))
    w2 = net.attention(e, net.embed(torch.tensor([[5]])))
    assert w1.shape == (1, 1, 3)
    assert not torch.allclose(w1, w2)
    assert not torch.isclose(w1.sum(), torch.tensor(1.0))


def test_dice_hand_computed():
    s = torch.tensor([[-1.0], [1.0]])                # batch mean 0, variance 1
    alpha = torch.tensor([0.5])
    p = torch.sigmoid(torch.tensor([-1.0, 1.0]) / math.sqrt(1 + 1e-8))
    want = p * torch.tensor([-1.0, 1.0]) + (1 - p) * 0.5 * torch.tensor([-1.0, 1.0])
    assert torch.allclose(si.dice(s, alpha, dim=0).ravel(), want)
    assert si.prelu(torch.tensor([-2.0, 3.0]), torch.tensor(0.25)).tolist() == [-0.5, 3.0]


@FAST
@given(shift=st.floats(-50, 50), scale=st.floats(0.1, 10), seed=st.integers(0, 1000))
def test_dice_gate_is_invariant_to_shifting_and_scaling_the_batch(shift, scale, seed):
    s = torch.randn(64, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    alpha = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    p = lambda x: (si.dice(x, alpha) - alpha * x) / ((1 - alpha) * x)   # the gate p(s)
    assert torch.allclose(p(s), p(scale * s + shift), atol=1e-6)


def test_mba_l2_hand_computed_and_gradient_only_on_batch_rows():
    table = torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, 3.0], [5.0, 5.0]], requires_grad=True)
    counts = torch.tensor([1, 4, 3, 7])
    rows = torch.tensor([1, 2])
    pen = si.mba_l2(table, rows, counts, lam=0.5)
    assert pen.item() == pytest.approx(0.25 * (8 / 4 + 9 / 3))
    pen.backward()
    g = table.grad.to_dense()
    assert g[[0, 3]].abs().sum() == 0                                     # rows outside the batch untouched
    assert torch.allclose(g[1], 0.5 * table[1].detach() / 4)             # λ w_j / n_j (Eq. 6)
    assert torch.allclose(g[2], 0.5 * table[2].detach() / 3)
    assert table.grad.is_sparse


def test_full_l2_and_gradient_bytes():
    table = torch.ones(100, 8, requires_grad=True)
    assert si.full_l2(table, 0.2).item() == pytest.approx(0.1 * 800)
    si.full_l2(table, 0.2).backward()
    assert si.sparse_grad_bytes(table.grad) == 100 * 8 * 4
    table.grad = None
    ids = torch.tensor([3, 3, 7])
    F.embedding(ids, table, sparse=True).sum().backward()
    assert si.sparse_grad_bytes(table.grad) == 3 * 8 * 4 + 3 * 8         # uncoalesced: one row per lookup


@FAST
@given(seed=st.integers(0, 10_000), n=st.integers(4, 60))
def test_auc_matches_sklearn(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.integers(0, 5, n).astype(float)                              # ties on purpose
    assert si.auc(s, y) == pytest.approx(roc_auc_score(y, s))


def test_rela_impr_and_two_level_auc():
    assert si.rela_impr(0.8, 0.75) == pytest.approx(0.2)
    assert si.two_level_auc(0.8, 0.2) == pytest.approx(0.8)          # p = 0.8, q = 0.2: 0.64 + 0.5 * 0.32
    assert si.two_level_auc(0.5, 0.5) == pytest.approx(0.5)
    assert si.two_level_auc(1.0, 0.0) == pytest.approx(1.0)


def test_ctr_data_plants_the_interests():
    d = si.ctr_data(500, 60, 6, 2, 5, seed=1)
    assert (d["interest_of"][d["hist"]] == d["hist_interest"]).all()
    assert (d["interest_of"][d["cand"]] == d["cand_interest"]).all()
    own = [set(h) for h in d["hist_interest"]]
    # a matching candidate's interest is one the user has; a non-matching one never is (when the user showed it)
    assert all(c in o for c, o, m in zip(d["cand_interest"], own, d["match"]) if m and len(o) == 2)
    assert not any(c in o for c, o, m in zip(d["cand_interest"], own, d["match"]) if not m)
    assert 0.7 < d["click"][d["match"]].mean() and d["click"][~d["match"]].mean() < 0.3


# ---------------------------------------------------------------------------
# MgNO: transfer operators, V-cycle, spectral convolution
# ---------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 10_000), k=st.integers(2, 5), dim=st.sampled_from([1, 2]), c=st.integers(1, 3))
def test_restriction_and_prolongation_are_adjoint(seed, k, dim, c):
    g = torch.Generator().manual_seed(seed)
    n, m = 2 ** k + 1, 2 ** (k - 1) + 1
    kern = torch.randn((c + 1, c) + (3,) * dim, generator=g, dtype=torch.float64)
    x = torch.randn((2, c) + (n,) * dim, generator=g, dtype=torch.float64)
    y = torch.randn((2, c + 1) + (m,) * dim, generator=g, dtype=torch.float64)
    rx, py = si.restrict(x, kern), si.prolong(y, kern)
    assert rx.shape == y.shape and py.shape == x.shape
    assert torch.isclose((rx * y).sum(), (x * py).sum(), rtol=1e-10)   # <Rx, y> = <x, Py>, P = R^T exactly


def test_transfer_operators_match_torch_convolutions():
    kern = torch.randn(2, 3, 3, dtype=torch.float64)
    x = torch.randn(4, 3, 17, dtype=torch.float64)
    y = torch.randn(4, 2, 9, dtype=torch.float64)
    assert torch.allclose(si.restrict(x, kern), F.conv1d(x, kern, stride=2, padding=1))
    assert torch.allclose(si.prolong(y, kern), F.conv_transpose1d(y, kern, stride=2, padding=1))
    k2 = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    x2 = torch.randn(1, 3, 9, 9, dtype=torch.float64)
    assert torch.allclose(si.smooth(x2, k2, "dirichlet"), F.conv2d(x2, k2, padding=1))


def test_full_weighting_pair_is_linear_interpolation_up_to_two_to_the_dim():
    for dim in (1, 2):
        R = si.full_weighting(dim)
        coarse = torch.linspace(0, 1, 9, dtype=torch.float64)
        fine = torch.linspace(0, 1, 17, dtype=torch.float64)
        if dim == 1:
            p = (2 ** dim) * si.prolong(coarse.view(1, 1, 9), R)[0, 0]
            assert torch.allclose(p[1:-1], fine[1:-1])
        else:
            c2 = coarse[:, None] + 2 * coarse[None, :]
            p = (2 ** dim) * si.prolong(c2.view(1, 1, 9, 9), R)[0, 0]
            assert torch.allclose(p[1:-1, 1:-1], (fine[:, None] + 2 * fine[None, :])[1:-1, 1:-1])
        # restriction of a smooth function keeps its interior values
        r = si.restrict(fine.view(1, 1, 17) if dim == 1 else (fine[:, None] + fine[None, :]).view(1, 1, 17, 17), R)
        want = coarse if dim == 1 else coarse[:, None] + coarse[None, :]
        assert torch.allclose(r[0, 0][(slice(1, -1),) * dim], want[(slice(1, -1),) * dim])


@FAST
@given(seed=st.integers(0, 1000), a=st.floats(-3, 3), b=st.floats(-3, 3), bc=st.sampled_from(si.BCS))
def test_vcycle_operator_is_linear(seed, a, b, bc):
    torch.manual_seed(seed)
    op = si.VCycleOperator(2, 3, levels=3, bc=bc).double()
    f, g = torch.randn(2, 2, 17, dtype=torch.float64), torch.randn(2, 2, 17, dtype=torch.float64)
    assert torch.allclose(op(a * f + b * g), a * op(f) + b * op(g), atol=1e-9)


def test_spectral_conv_keeps_only_low_modes():
    n, x = 32, torch.linspace(0, 1, 33)[:-1]
    low, high = torch.sin(2 * math.pi * x), torch.sin(2 * math.pi * 10 * x)
    w = torch.ones(1, 1, 4, dtype=torch.complex64)
    out = si.spectral_conv((low + high).view(1, 1, n), w, 4)
    assert torch.allclose(out[0, 0], low, atol=1e-5)
    w2 = torch.ones(2, 1, 1, 3, 3, dtype=torch.complex64)
    img = torch.randn(1, 1, 16, 16)
    assert si.spectral_conv(img, w2, 3).shape == img.shape


# ---------------------------------------------------------------------------
# Darcy solvers against closed forms
# ---------------------------------------------------------------------------
def test_darcy_1d_dirichlet_exact_for_constant_coefficient():
    n = 33
    x = np.linspace(0, 1, n)
    u = si.darcy_1d(np.ones(n - 1), np.ones(n))
    assert np.abs(u - x * (1 - x) / 2).max() < 1e-12


def test_darcy_1d_variable_coefficient_converges_at_second_order():
    errs = []
    for n in (33, 65, 129):
        x = np.linspace(0, 1, n)
        xm = (x[1:] + x[:-1]) / 2
        f = -np.pi * np.cos(np.pi * x) + (1 + x) * np.pi ** 2 * np.sin(np.pi * x)   # u = sin(πx), a = 1 + x
        errs.append(np.abs(si.darcy_1d(1 + xm, f) - np.sin(np.pi * x)).max())
    assert errs[-1] < 1e-4
    assert 3.5 < errs[0] / errs[1] < 4.5 and 3.5 < errs[1] / errs[2] < 4.5


def test_darcy_1d_neumann_matches_cosine_solution():
    n = 129
    x = np.linspace(0, 1, n)
    u = si.darcy_1d(np.ones(n - 1), np.cos(np.pi * x), "neumann")
    assert np.abs(u - np.cos(np.pi * x) / np.pi ** 2).max() < 2e-5


def test_darcy_2d_matches_sine_solution():
    n = 33
    x = np.linspace(0, 1, n)
    X, Y = np.meshgrid(x, x, indexing="ij")
    exact = np.sin(np.pi * X) * np.sin(np.pi * Y)
    u = si.darcy_2d(np.ones((n, n)), 2 * np.pi ** 2 * exact)
    assert np.abs(u - exact).max() < 1e-3


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="w must have shape"):
        si.weighted_pool(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="e must be a torch.Tensor"):
        si.activation_unit_input(np.zeros((3, 2)), torch.zeros(2))
    with pytest.raises(ValueError, match="at least 2 entries"):
        si.dice(torch.zeros(1, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="each row id once"):
        si.mba_l2(torch.zeros(4, 2), torch.tensor([1, 1]), torch.ones(4), 0.1)
    with pytest.raises(ValueError, match="lam must be"):
        si.full_l2(torch.zeros(4, 2), -1.0)
    with pytest.raises(ValueError, match="both classes"):
        si.auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="auc_base must be > 0.5"):
        si.rela_impr(0.7, 0.5)
    with pytest.raises(ValueError, match="2\\^k \\+ 1"):
        si.restrict(torch.zeros(1, 1, 16), si.full_weighting())
    with pytest.raises(ValueError, match="bc must be one of"):
        si.darcy_1d(np.ones(4), np.ones(5), "periodic")
    with pytest.raises(ValueError, match="a_mid must be finite and > 0"):
        si.darcy_1d(-np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="n_items must be a multiple"):
        si.ctr_data(10, 7, 3, 1, 2)
    with pytest.raises(ValueError, match="interests_per_user must be"):
        si.ctr_data(10, 9, 3, 3, 2)
    with pytest.raises(ValueError, match="pool must be"):
        si.CTRNet([0], 10, pool="max")
    with pytest.raises(ValueError, match="kind must be"):
        si.build_model("unet", si.OperatorConfig())


# ---------------------------------------------------------------------------
# runners on tiny configs, and a claim on their output
# ---------------------------------------------------------------------------
def test_run_ctr_tiny_is_deterministic_and_independent_of_batching():
    cfg = si.CTRConfig(n_items=60, n_interests=6, interests_per_user=2, hist_len=4, n_train=300, n_test=200,
                       hidden=(8,), att_hidden=4, steps=6, batch_size=32, evals=2, n_eval=100, reg="mba", act="dice")
    a = si.run_ctr([0, 1], cfg)
    b = si.run_ctr([1], cfg)
    assert a[1]["test_auc"] == pytest.approx(b[0]["test_auc"], abs=1e-5)
    assert si.run_ctr([0, 1], cfg)[0]["test_auc"] == a[0]["test_auc"]
    assert {"test_auc", "train_auc", "curve", "w_match", "w_other", "example", "oracle_auc"} <= set(a[0])
    assert len(a[0]["curve"]) == len(a[0]["curve_steps"]) == 3


def test_run_ctr_chunked_evaluation_equals_one_pass_without_dice():
    """Evaluating the test set in chunks changes nothing for PReLU models (Dice's batch statistics aside)."""
    from dataclasses import replace

    cfg = si.CTRConfig(n_items=60, n_interests=6, interests_per_user=2, hist_len=4, n_train=300, n_test=200,
                       hidden=(8,), att_hidden=4, steps=4, batch_size=32, evals=2, n_eval=100)
    one, chunked = si.run_ctr([0, 1], cfg), si.run_ctr([0, 1], replace(cfg, eval_chunk=64))
    for a, b in zip(one, chunked):
        assert b["test_auc"] == pytest.approx(a["test_auc"], abs=1e-6)
        assert b["test_logloss"] == pytest.approx(a["test_logloss"], rel=1e-5)
        assert np.allclose(b["example"]["weights"], a["example"]["weights"], atol=1e-6)
        assert b["w_match"] == pytest.approx(a["w_match"], rel=1e-5)


def test_run_operator_tiny_feeds_paired_differences_and_an_inconclusive_claim():
    cfg = si.OperatorConfig(n_grid=17, n_train=(8,), n_test=8, channels=2, levels=3, modes=4, cnn_depth=2, steps=3, batch_size=4)
    widths = si.matched_widths(cfg)
    assert widths["mgno"]["params"] == si.n_params(si.build_model("mgno", cfg))
    mg = si.run_operator([0, 1, 2], cfg, "mgno", 8)
    fno = si.run_operator([0, 1, 2], cfg, "fno", 8)
    d = paired_difference([r["test_err"] for r in fno], [r["test_err"] for r in mg])
    assert d.n == 3 and d.kind == "seeds"
    # an interval straddling the threshold gives "inconclusive"
    claims = ClaimSet("sparse_inputs")
    c = claims.add("x", paper="he2024mgno", statement="s", quantity="q", paper_value="v",
                   measured=from_seeds([-0.01, 0.02, 0.005, -0.004, 0.01]), criterion=AtLeast(0.0))
    assert c.verdict == "inconclusive"


def test_run_reg_cost_bytes_are_exact():
    cost = si.run_reg_cost(si.RegCostConfig(vocab=(1000,), dim=4, batch_size=8, hist_len=2, repeats=2))
    assert cost["bytes_full"][0] == 1000 * 4 * 4
    assert cost["bytes_mba"][0] == cost["rows"][0] * (4 * 4 + 8)
    assert cost["bytes_lookup_sparse"][0] == 8 * 3 * (4 * 4 + 8)
    assert cost["sec_mba"].shape == (1, 2)


def test_darcy_data_shapes_and_presets_construct():
    a, u = si.darcy_data(3, 17, 1, "neumann", seed=0)
    assert a.shape == u.shape == (3, 1, 17) and set(np.unique(a)) <= {3.0, 12.0}
    assert np.abs(u.mean(-1)).max() < 0.05                                 # Neumann: (weighted) mean zero
    a2, u2 = si.darcy_data(1, 9, 2, seed=0)
    assert u2.shape == (1, 1, 9, 9) and np.abs(u2[0, 0, 0]).max() == 0
    for scale in ("ci", "full"):
        cfg = si.OperatorConfig.preset(scale)
        assert si.n_params(si.build_model("mgno", cfg)) > 0
        si.CTRConfig.preset(scale)
    full2d = si.OperatorConfig.preset("full", dim=2, n_grid=17, levels=4, modes=4)
    x = torch.zeros(1, 1, 17, 17)
    for kind, w in (("mgno", None), ("fno", 4), ("cnn", 4)):
        assert si.build_model(kind, full2d, w)(x).shape == x.shape


def test_train_one_cycle_schedule_and_member_independence():
    x = torch.linspace(-1, 1, 40).reshape(10, 1, 4)
    y = 2 * x
    make = lambda: torch.nn.Conv1d(1, 1, 3, padding=1)
    a = si.train_one_cycle(make, x, y, [3, 5], steps=20, lr=0.1, batch_size=4, div_factor=2.0, final_div_factor=100.0)
    # the authors' one-cycle: starts at lr/2, peaks at lr (30% of the steps), ends near lr/200
    assert a["lr"][0] == pytest.approx(0.05) and a["lr"].max() == pytest.approx(0.1, rel=1e-3)
    assert int(a["lr"].argmax()) == 5 and a["lr"][-1] < 0.1 / 100
    assert np.all(np.diff(a["lr"][6:]) < 0)
    assert a["loss"].shape == (20, 2) and a["loss"][-1].mean() < a["loss"][0].mean()
    # a member trains as it would alone (same seed, same batch order, same schedule)
    b = si.train_one_cycle(make, x, y, [5], steps=20, lr=0.1, batch_size=4)
    assert np.allclose(a["loss"][:, 1], b["loss"][:, 0], atol=1e-5)
    assert torch.allclose(a["predict"](x)[1], b["predict"](x)[0], atol=1e-5)


def test_over_jobs_cuts_the_seeds_into_the_same_chunks_for_every_job():
    from sparsebook.sparse_inputs.experiments import _over_jobs

    runner = lambda seeds, tag: [(tag, s, tuple(seeds)) for s in seeds]
    out = _over_jobs(runner, {"a": ("A",), ("b", 2): ("B",)}, range(5), 3, 1)
    assert list(out) == ["a", ("b", 2)]
    assert out["a"] == [("A", 0, (0, 1, 2)), ("A", 1, (0, 1, 2)), ("A", 2, (0, 1, 2)), ("A", 3, (3, 4)), ("A", 4, (3, 4))]
    assert [r[2] for r in out[("b", 2)]] == [(0, 1, 2)] * 3 + [(3, 4)] * 2
    with pytest.raises(ValueError, match="batch"):
        _over_jobs(runner, {"a": ("A",)}, range(5), 0, 1)
    # a cost only changes the order of submission, not which result lands where
    assert _over_jobs(runner, {"a": ("A",), "b": ("B",)}, range(5), 2, 1, cost=lambda a: a[0] == "B") == \
        _over_jobs(runner, {"a": ("A",), "b": ("B",)}, range(5), 2, 1)


def test_full_suites_run_on_a_tiny_smoke_config():
    """The full presets' code path (10-seed chunks, every condition) on a CPU, shrunk to a few steps."""
    from dataclasses import replace

    ctr = si.CTRSuiteConfig.preset("full")
    assert ctr.batch == si.N_SEEDS["full"] and ctr.interests == (1, 2, 4, 8)
    assert (ctr.base.steps, ctr.base.batch_size, ctr.base.eval_chunk) == (1000, 4096, 8192)
    tiny = replace(ctr, base=replace(ctr.base, n_items=100, n_train=64, n_test=32, n_eval=16, steps=2, batch_size=8,
                                     evals=1, eval_chunk=10, device="cpu"))     # the test set in 4 chunks
    runs = si.run_ctr_suite(tiny, [0, 1, 2], workers=1)
    assert len(runs) == 12 and all(len(v) == 3 for v in runs.values())
    assert all(0 <= r["test_auc"] <= 1 for v in runs.values() for r in v)
    ops = si.OperatorSuiteConfig.preset("full")
    assert ops.batch == si.N_SEEDS["full"] and (ops.base.steps, ops.base.batch_size) == (500, 64)
    # optimizer steps at full (every condition one loop of all seeds) stay within 3x ci's 6,600
    n_ctr = len(runs)
    n_ops = 2 * len(ops.base.n_train) + 1 + 2 + 2
    assert n_ctr * ctr.base.steps + n_ops * ops.base.steps <= 3 * 6600
    tiny = replace(ops, base=replace(ops.base, n_train=(2, 4, 6, 8), n_test=4, steps=2, batch_size=2, device="cpu"))
    op = si.run_operator_suite(tiny, [0, 1], workers=1)
    assert len(op) == 13 and all(len(v) == 2 and np.isfinite(v[0]["test_err"]) for v in op.values())
