"""Tests for sparsebook.sparse_kernels: reference semantics (CPU, in CI) and the Triton kernels (``-m gpu``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsebook.claims import AtLeast, ClaimSet
from sparsebook.sparse_kernels import experiments as ex
from sparsebook.sparse_kernels import kernels as K
from sparsebook.stats import from_samples

FAST = settings(max_examples=30, deadline=None)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# ---------------------------------------------------------------------------
# known values
# ---------------------------------------------------------------------------
def test_sparse_gemv_reference_hand_computed():
    x = torch.tensor([2.0, -0.5, 0.0, -3.0])
    wt = torch.tensor([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0], [0.5, -1.0]])
    # t = 1: inputs 0 and 3 are active -> y = 2*[1, 2] + (-3)*[0.5, -1] = [0.5, 7]
    assert K.sparse_gemv_reference(x, wt, 1.0).tolist() == [0.5, 7.0]
    # t = 0: every nonzero input is active; the exact zero contributes nothing either way
    assert K.sparse_gemv_reference(x, wt, 0.0).tolist() == [-4.5, -3.0]


def test_threshold_is_strict():
    x = torch.tensor([1.0, -1.0, 0.999, 2.0])
    assert K.activation_mask(x, 1.0).tolist() == [False, False, False, True]


def test_threshold_for_sparsity_cuts_k_smallest():
    x = torch.tensor([0.3, -2.0, 0.1, 5.0, -0.2])
    assert K.threshold_for_sparsity(x, 0.0) == 0.0
    t = K.threshold_for_sparsity(x, 0.6)  # k = 3: cut 0.1, -0.2, 0.3
    assert t == pytest.approx(0.3)
    assert K.activation_mask(x, t).tolist() == [False, True, False, True, False]


def test_sparse_rows_reference_hand_computed():
    x = torch.tensor([1.0, 2.0])
    w = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    a = torch.tensor([0.5, -2.0, 0.1])
    # rows 0 and 2 inactive at t = 0.2 (|0.1| <= 0.2 and ... 0.5 > 0.2 active)
    h = K.sparse_rows_reference(x, a, w, 0.2)
    assert h.tolist() == [0.5 * 3.0, -2.0 * 2.0, 0.0]


def test_ideal_speedup_and_fraction():
    assert K.ideal_speedup(0.5) == 2.0
    assert K.ideal_speedup(0.1) == pytest.approx(10.0)
    assert float(K.fraction_of_ideal(1.8, 0.5)) == pytest.approx(0.9)


def test_layer_byte_fraction_llama7b():
    d, f = 4096, 11008
    assert K.layer_byte_fraction(0.0, d, f) == 1.0
    # CATS at 50%: gate dense, half of up and down -> (4d² + 2df)/(4d² + 3df)
    assert K.layer_byte_fraction(0.5, d, f) == pytest.approx((4 * d * d + 2 * d * f) / (4 * d * d + 3 * d * f))
    assert K.layer_byte_fraction(0.5, d, f, "chess") < K.layer_byte_fraction(0.5, d, f)


def test_two_four_mask_known_groups():
    w = torch.tensor([[0.1, -5.0, 3.0, 0.2, 1.0, 1.0, 1.0, 1.0]])
    m = K.two_four_mask(w)
    assert m.tolist() == [[False, True, True, False, True, True, False, False]]  # ties keep the earlier
    assert K.is_two_four(w * m)
    assert not K.is_two_four(w)


def test_crossover_sparsity():
    assert K.crossover_sparsity([0.7, 0.8, 0.9], [0.5, 0.8, 1.2]) == pytest.approx(0.85)
    assert math.isnan(K.crossover_sparsity([0.7, 0.8], [0.5, 0.9]))
    assert K.crossover_sparsity([0.7, 0.8], [1.1, 1.5]) == 0.7
    # a dip after a win: the last crossing counts
    assert K.crossover_sparsity([0.5, 0.6, 0.7, 0.8], [1.2, 0.9, 0.95, 1.05]) == pytest.approx(0.75)


def test_conv1x1_matches_conv2d_dense_and_csr():
    g = torch.Generator().manual_seed(0)
    w = K.random_sparse_weight(6, 4, 0.75, g)
    assert int((w == 0).sum()) == 18
    x = torch.randn(4, 3, 5, generator=g)
    ref = torch.nn.functional.conv2d(x[None], w[:, :, None, None])[0]
    torch.testing.assert_close(K.conv1x1_as_matmul(w, x), ref)
    torch.testing.assert_close(K.conv1x1_as_matmul(w.to_sparse_csr(), x), ref)


def test_cats_mlp_reference_is_the_composition():
    g = torch.Generator().manual_seed(1)
    d, f = 8, 16
    x = torch.randn(d, generator=g)
    wg, wu, wd = torch.randn(f, d, generator=g), torch.randn(f, d, generator=g), torch.randn(d, f, generator=g)
    a = torch.nn.functional.silu(wg.double() @ x.double())
    t = K.threshold_for_sparsity(a, 0.5)
    y = K.cats_mlp_reference(x, wg, wu, wd, t)
    h = K.sparse_rows_reference(x, a, wu, t)
    torch.testing.assert_close(y, K.sparse_gemv_reference(h, wd.t().double(), 0.0))
    dense = wd.double() @ (a * (wu.double() @ x.double()))
    torch.testing.assert_close(K.cats_mlp_reference(x, wg, wu, wd, 0.0), dense)


def test_chess_thresholds_hand_computed():
    # two channels, four calibration tokens; mu = E|up| = (1, 4)
    a = torch.tensor([[1.0, 0.1], [2.0, 0.2], [3.0, 0.3], [4.0, 0.4]])
    u = torch.tensor([[1.0, 4.0], [-1.0, -4.0], [1.0, 4.0], [-1.0, 4.0]])
    # importance |a| * mu: channel 0: 1,2,3,4; channel 1: .4,.8,1.2,1.6 -> sorted .4 .8 1 1.2 1.6 2 3 4
    t = K.chess_thresholds(a, u, 0.5)  # tau = 4th smallest = 1.2
    assert torch.allclose(t, torch.tensor([1.2, 0.3], dtype=torch.float64))
    kept = K.threshold_activation(a, t) != 0
    assert kept.tolist() == [[False, False], [True, False], [True, False], [True, True]]
    # CATS on the same data: one cutoff, the 4th smallest |a| = 0.4: channel 1 is cut entirely
    assert K.cats_threshold(a, 0.5) == pytest.approx(0.4)


def test_chess_equals_cats_when_up_magnitudes_are_equal():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 16, generator=g)
    u = torch.randn(64, 16, generator=g).sign() * 2.5  # E|up| = 2.5 in every channel
    t = K.chess_thresholds(a, u, 0.7)
    assert torch.allclose(t, torch.full((16,), K.cats_threshold(a, 0.7), dtype=torch.float64))


def test_threshold_activation_scalar_and_channels():
    a = torch.tensor([[-0.5, 0.2, 1.0], [0.3, -2.0, 0.1]])
    assert torch.equal(K.threshold_activation(a, 0.3), torch.tensor([[-0.5, 0.0, 1.0], [0.0, -2.0, 0.0]]))
    assert torch.equal(K.threshold_activation(a, torch.tensor([0.0, 1.0, 0.5])),
                       torch.tensor([[-0.5, 0.0, 1.0], [0.3, -2.0, 0.0]]))


def test_dispatch_crossover_and_plan():
    s = [0.0, 0.25, 0.5, 0.7, 0.9]
    # loses at 0 and 0.5, wins from 0.7: the crossover is 0.7 (a win at 0.25 below a loss does not count)
    assert K.dispatch_crossover(s, [2.0, 0.9, 1.1, 0.8, 0.5], [1.0] * 5) == 0.7
    assert K.dispatch_crossover(s, [0.5] * 5, [1.0] * 5) == 0.0
    assert K.dispatch_crossover(s, [2.0] * 5, [1.0] * 5) == 1.0
    table = {"qo": 0.7, "down": 0.25, "up": 0.5}
    shape_of = {"q": "qo", "o": "qo", "up": "up", "down": "down", "k": "kv"}
    plan = K.dispatch_plan({"q": 0.5, "o": 0.7, "up": 0.5, "down": 0.2, "k": 0.9}, shape_of, table)
    assert plan == {"q": "dense", "o": "sparse", "up": "sparse", "down": "dense", "k": "dense"}


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------
@FAST
@given(st.integers(1, 40), st.integers(1, 6), st.floats(0.0, 0.99), st.integers(0, 10_000))
def test_gemv_reference_equals_dense_on_masked_input(k, n, s, seed):
    g = torch.Generator().manual_seed(seed)
    x, wt = torch.randn(k, generator=g), torch.randn(k, n, generator=g)
    t = K.threshold_for_sparsity(x, s)
    m = K.activation_mask(x, t)
    assert int(m.sum()) == k - math.floor(s * k + 0.5)  # continuous draws: no ties
    torch.testing.assert_close(K.sparse_gemv_reference(x, wt, t), (x * m).double() @ wt.double())


@FAST
@given(st.integers(1, 12), st.integers(1, 6), st.integers(0, 10_000))
def test_two_four_mask_keeps_two_of_four_and_the_largest(groups, rows, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, 4 * groups, generator=g)
    m = K.two_four_mask(w)
    assert (m.reshape(-1, 4).sum(1) == 2).all()
    kept = (w.abs() * m).reshape(-1, 4)
    dropped = (w.abs() * ~m).reshape(-1, 4)
    assert (kept.max(1).values >= dropped.max(1).values).all()


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="threshold"):
        K.activation_mask(torch.ones(3), -1.0)
    with pytest.raises(ValueError, match="sparsity"):
        K.threshold_for_sparsity(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="wt"):
        K.sparse_gemv_reference(torch.ones(3), torch.ones(4, 2), 0.0)
    with pytest.raises(TypeError, match="x"):
        K.sparse_gemv_reference([1.0], torch.ones(1, 2), 0.0)
    with pytest.raises(ValueError, match="multiple of 4"):
        K.two_four_mask(torch.ones(2, 6))
    with pytest.raises(ValueError, match="active_fraction"):
        K.ideal_speedup(0.0)
    with pytest.raises(ValueError, match="attention"):
        K.layer_byte_fraction(0.5, 4, 8, "sparse")
    with pytest.raises(ValueError, match="increasing"):
        K.crossover_sparsity([0.9, 0.8], [1.0, 2.0])
    with pytest.raises(ValueError, match="rounds"):
        ex.run_conv_sweep(ex.ConvConfig(rounds=1))
    with pytest.raises(ValueError, match="threshold"):
        K.threshold_activation(torch.ones(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="threshold"):
        K.threshold_activation(torch.ones(3), -0.1)
    with pytest.raises(ValueError, match="a_up"):
        K.chess_thresholds(torch.ones(4, 3), torch.ones(4, 2), 0.5)
    with pytest.raises(ValueError, match="a_gate"):
        K.cats_threshold(torch.ones(3), 0.5)
    with pytest.raises(ValueError, match="sparse_ms"):
        K.dispatch_crossover([0.0, 0.5], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="sparsity"):
        K.dispatch_plan({"q": 1.5}, {"q": "qo"}, {"qo": 0.5})
    with pytest.raises(ValueError, match="shape_of"):
        K.dispatch_plan({"q": 0.5}, {}, {"qo": 0.5})
    with pytest.raises(TypeError, match="dict"):
        K.dispatch_plan([("q", 0.5)], {}, {})
    with pytest.raises(ValueError, match="n_seeds"):
        ex.run_accuracy(ex.AccuracyConfig(n_seeds=1))


# ---------------------------------------------------------------------------
# runners and claims
# ---------------------------------------------------------------------------
def test_conv_sweep_tiny_feeds_estimates():
    cfg = ex.ConvConfig(layers=((8, 16, 4), (16, 16, 2)), sparsities=(0.5, 0.9), rounds=3, repeats=1)
    res = ex.run_conv_sweep(cfg, seed=0)
    assert res["dense"].shape == (3, 2) and res["layer_sparse"].shape == (3, 2, 2)
    assert res["max_rel_err"] < 1e-5
    est = ex.conv_speedups(res)
    assert len(est) == 2 and all(e.kind == "monte carlo" and e.n == 3 for e in est)


def test_markov_windows_follow_the_table():
    x, y = ex.markov_windows(4, 3, 20000, 0.5, seed=1, table_seed=2)
    assert x.shape == (20000, 3) and y.shape == (20000,) and int(x.max()) < 4
    table = np.random.default_rng(2).dirichlet(np.full(4, 0.5), size=(4, 4))
    sel = (x[:, 1] == 1) & (x[:, 2] == 3)
    freq = np.bincount(y[sel].numpy(), minlength=4) / int(sel.sum())
    assert np.abs(freq - table[1, 3]).max() < 0.05


def test_run_accuracy_tiny_is_deterministic_and_exact_at_zero():
    cfg = ex.AccuracyConfig(d_model=8, d_ff=16, layers=1, n_train=512, n_calib=128, n_test=256, steps=20,
                            batch_size=32, n_seeds=2, sparsities=(0.0, 0.5))
    r1, r2 = ex.run_accuracy(cfg, seed=3), ex.run_accuracy(cfg, seed=3)
    assert np.array_equal(r1["cats_loss"], r2["cats_loss"]) and np.array_equal(r1["chess_acc"], r2["chess_acc"])
    # at sparsity 0 both rules cut nothing: the dense model exactly
    assert np.allclose(r1["cats_loss"][:, 0], r1["dense_loss"]) and np.allclose(r1["chess_loss"][:, 0], r1["dense_loss"])
    assert np.allclose(r1["cats_cut"][:, 1], 0.5, atol=0.1)
    rows = ex.accuracy_rows(r1)
    assert rows[0]["cats_dloss"].value == pytest.approx(0.0, abs=1e-9) and "chess_minus_cats" in rows[1]


def test_full_accuracy_preset_constructs():
    cfg = ex.AccuracyConfig.preset("full")
    assert cfg.n_seeds >= 5 and 0.5 in cfg.sparsities
    m = ex.GatedLM(cfg.vocab, cfg.context, 8, 16, 2)
    assert m(torch.zeros(3, cfg.context, dtype=torch.long)).shape == (3, cfg.vocab)


def test_stored_dispatch_data_renders():
    if not ex.DISPATCH_DATA.exists():
        pytest.skip("no stored dispatcher measurement")
    data = ex.load_h200(ex.DISPATCH_DATA)
    rows = ex.dispatch_rows(data)
    assert rows and all(("chess_dispatch" in r) == ("chess_dispatch" not in p["errors"])
                        for r, p in zip(rows, data["dispatch"]["points"]))
    table = ex.dispatch_table(data)
    assert set(table) == {"qo", "up", "down"}
    for r in rows:  # the stored plan is the rule applied to the stored table
        assert r["plan"] == K.dispatch_plan({n: r["sparsity"] for n in r["plan"]},
                                            {"q": "qo", "o": "qo", "up": "up", "down": "down"},
                                            {k: v["crossover"] for k, v in table.items()})


def test_ratio_estimate_and_straddling_claim_is_inconclusive():
    dense = [[1.0, 1.1], [1.0, 1.0], [1.2, 1.2]]
    sparse = [[0.5, 0.5], [0.7, 0.7], [0.9, 0.9]]
    e = ex.ratio_estimate(dense, sparse)
    assert e.value == pytest.approx(np.mean([1.05 / 0.5, 1 / 0.7, 1.2 / 0.9]))
    cs = ClaimSet("sparse_kernels_test")
    c = cs.add("x", paper="elsen2020fast", statement="s", quantity="q", paper_value="v",
               measured=from_samples([1.1, 1.5, 1.3]), criterion=AtLeast(1.3))
    assert c.verdict == "inconclusive"


def test_stored_h200_data_renders():
    data = ex.load_h200()
    assert "H200" in data["environment"]["gpu"]
    rows = ex.gemv_rows(data)
    assert {r["sparsity"] for r in rows} >= {0.0, 0.5, 0.9}
    assert all(r["speedup"].n >= 3 for r in rows)
    assert "measured on NVIDIA H200" in ex.h200_label(data)
    assert all(r["rel_err"] < 3e-3 for r in data["gemv"]["correctness"] if r["shape"].endswith("float16"))


def test_tokens_per_second_from_stack_times():
    data = {"layer": {"layers": 8, "points": [{"sparsity": 0.5, "times_ms": {"dense": [2.0, 2.0, 2.0, 2.0]}}]}}
    e = ex.tokens_per_second(data, 0.5, "dense", n_layers=32)  # 4 stacks of 2 ms per token -> 125 tokens/s
    assert e.value == pytest.approx(125.0) and e.n == 4
    with pytest.raises(ValueError, match="variant"):
        ex.tokens_per_second(data, 0.5, "cats")
    with pytest.raises(ValueError, match="n_layers"):
        ex.tokens_per_second(data, 0.5, "dense", n_layers=0)


def test_stored_cpu_data_renders():
    data = ex.load_h200(ex.CPU_DATA)
    assert data["environment"]["threads"] == 1 and data["max_rel_err"] < 1e-5
    est = ex.conv_speedups(data)
    assert len(est) == len(data["sparsities"]) and all(e.n == data["config"]["rounds"] for e in est)
    assert "measured on" in ex.cpu_label(data)


def test_measure_cpu_writes_json(tmp_path):
    cfg = ex.ConvConfig(layers=((8, 8, 2),), sparsities=(0.5,), rounds=2, repeats=1)
    out = ex.measure_cpu(cfg, 0, tmp_path / "cpu.json")
    again = ex.load_h200(tmp_path / "cpu.json")
    assert again["dense"] == out["dense"] and len(again["dense"]) == 2


# ---------------------------------------------------------------------------
# GPU (Triton): run with -m gpu where a CUDA device is present
# ---------------------------------------------------------------------------
@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0 - 1e-9])
def test_gpu_sparse_gemv_matches_reference(dtype, sparsity):
    from sparsebook.sparse_kernels import gpu

    dt = getattr(torch, dtype)
    g = torch.Generator(device="cuda").manual_seed(3)
    k, n = 1000, 300  # not multiples of the blocks: tails are masked
    wt = torch.randn(k, n, device="cuda", dtype=dt, generator=g)
    x = torch.randn(k, device="cuda", dtype=dt, generator=g)
    t = K.threshold_for_sparsity(x.float().cpu(), min(sparsity, 0.999))
    ref = K.sparse_gemv_reference(x.cpu(), wt.cpu(), t)
    tol = 3e-3 if dt == torch.float16 else 2e-2
    for cfg in gpu.CONFIGS:
        y = torch.full((n,), float("nan"), device="cuda", dtype=dt)
        gpu.sparse_gemv(x, wt, t, cfg, out=y)
        yd = y.double().cpu()
        assert torch.isfinite(yd).all(), cfg
        assert float((yd - ref).norm() / max(ref.norm(), 1e-30)) < tol, cfg
    torch.testing.assert_close(gpu.dispatch_gemv(x, wt, t, sparsity, 0.5).double().cpu(), ref,
                               rtol=tol, atol=tol * float(ref.abs().max()))


@pytest.mark.gpu
@needs_cuda
def test_gpu_sparse_rows_matches_reference():
    from sparsebook.sparse_kernels import gpu

    g = torch.Generator(device="cuda").manual_seed(4)
    f, d = 700, 520
    w = torch.randn(f, d, device="cuda", dtype=torch.float16, generator=g)
    x = torch.randn(d, device="cuda", dtype=torch.float16, generator=g)
    a = torch.randn(f, device="cuda", dtype=torch.float16, generator=g)
    t = K.threshold_for_sparsity(a.float().cpu(), 0.6)
    h = gpu.sparse_rows_gemv(x, a, w, t).double().cpu()
    ref = K.sparse_rows_reference(x.cpu(), a.cpu(), w.cpu(), t)
    assert float((h - ref).norm() / ref.norm()) < 1e-3
    assert (h[~K.activation_mask(a.cpu(), t)] == 0).all()


@pytest.mark.gpu
@needs_cuda
def test_gpu_bad_input_raises():
    from sparsebook.sparse_kernels import gpu

    with pytest.raises(ValueError, match="CUDA"):
        gpu.sparse_gemv(torch.ones(4), torch.ones(4, 2), 0.0)
    with pytest.raises(TypeError, match="float16"):
        gpu.sparse_gemv(torch.ones(4, device="cuda"), torch.ones(4, 2, device="cuda"), 0.0)
