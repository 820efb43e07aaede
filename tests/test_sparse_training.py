"""Tests for sparsebook.sparse_training: masks, DSnoT, PST/SaRA pieces, the sparse envelope, FLOPs,
VI and calibration kernels, SparK masks, the ridge probe, and tiny runs of the runners."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st_

from sparsebook import sparse_training as st
from sparsebook.claims import AtLeast, AtMost, ClaimSet
from sparsebook.stats import from_seeds, paired_difference

FAST = settings(max_examples=25, deadline=None)
SEEDS = [0, 1]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------
def test_n_keep_known_values():
    assert st.n_keep(10, 0.0) == 10
    assert st.n_keep(10, 0.25) == 7          # ⌊2.5 + ½⌋ = 3 removed
    assert st.n_keep(64, 0.875) == 8
    assert st.n_keep(7, 1.0) == 0


def test_row_topk_mask_known_case():
    s = torch.tensor([[0.1, 3.0, -2.0, 0.5], [4.0, 1.0, 2.0, 3.0]])
    m = st.row_topk_mask(s, 0.5)
    assert m.tolist() == [[False, True, False, True], [True, False, False, True]]


@FAST
@given(rows=st_.integers(1, 6), cols=st_.integers(1, 20), s=st_.floats(0, 1), seed=st_.integers(0, 1000))
def test_row_topk_mask_keeps_exactly_n_keep_largest(rows, cols, s, seed):
    x = _randn(3, rows, cols, seed=seed)
    m = st.row_topk_mask(x, s)
    k = st.n_keep(cols, s)
    assert (m.sum(-1) == k).all()
    if 0 < k < cols:
        kept_min = torch.where(m, x, torch.inf).min(-1).values
        gone_max = torch.where(~m, x, -torch.inf).max(-1).values
        assert (kept_min >= gone_max).all()


@FAST
@given(r=st_.integers(1, 8), c=st_.integers(1, 8), frac=st_.floats(0, 1), seed=st_.integers(0, 1000))
def test_smallest_magnitude_mask_selects_the_count_smallest(r, c, frac, seed):
    w = _randn(2, r, c, seed=seed)
    count = int(frac * r * c)
    m = st.smallest_magnitude_mask(w, count)
    assert (m.reshape(2, -1).sum(-1) == count).all()
    if 0 < count < r * c:
        a = w.abs().reshape(2, -1)
        mm = m.reshape(2, -1)
        assert (torch.where(mm, a, -torch.inf).max(-1).values <= torch.where(~mm, a, torch.inf).min(-1).values).all()


def test_smallest_magnitude_mask_known_case():
    w = torch.tensor([[0.5, -0.1, 2.0], [0.05, -3.0, 0.2]])
    assert st.smallest_magnitude_mask(w, 2).tolist() == [[False, True, False], [True, False, False]]


def test_layer_topk_mask_counts_over_the_whole_matrix():
    m = st.layer_topk_mask(_randn(4, 5, 6), 0.9)
    assert (m.reshape(4, -1).sum(-1) == st.n_keep(30, 0.9)).all()


def test_straight_through_forward_hard_backward_soft():
    soft = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    hard = torch.tensor([True, False, True])
    out = st.straight_through(hard, soft)
    assert out.tolist() == [1.0, 0.0, 1.0]
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert soft.grad.tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------
# Wanda and DSnoT
# ---------------------------------------------------------------------------
def test_wanda_scores_known_values():
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    assert st.wanda_scores(w, torch.tensor([2.0, 0.5])).tolist() == [[2.0, 1.0], [1.0, 1.5]]


def test_reconstruction_gap_known_values():
    w = torch.tensor([[1.0, 2.0, -1.0]])
    mask = torch.tensor([[True, False, False]])
    assert st.reconstruction_gap(w, mask, torch.tensor([1.0, 0.5, 2.0])).tolist() == [2.0 * 0.5 - 1.0 * 2.0]


def test_dsnot_hand_case_grows_the_best_and_prunes_the_least_important():
    # gap = Σ_pruned W E[X] = 1·1 + 0.2·1 = 1.2 > 0; grow j=1 (c = 1 with variance 1 vs 0.2 with variance 1);
    # prune the kept weight with c < 0 and the smallest Wanda score: index 3 (|-0.1|·1) rather than 2 (|-0.5|·1).
    w = torch.tensor([[2.0, 1.0, -0.5, -0.1, 0.2]])
    mask = torch.tensor([[True, False, True, True, False]])
    ones = torch.ones(5)
    new = st.dsnot(w, mask, ones, ones, ones, cycles=1)
    assert new.tolist() == [[True, True, True, False, False]]


def test_dsnot_stops_before_the_gap_changes_sign():
    w = torch.tensor([[2.0, 5.0, -0.1]])
    mask = torch.tensor([[True, False, True]])
    ones = torch.ones(3)
    # growing index 1 (c = 5) and pruning index 2 (c = -0.1) gives 5 - 5 - 0.1 < 0: sign flips, no swap
    assert torch.equal(st.dsnot(w, mask, ones, ones, ones, cycles=10), mask)


@FAST
@given(seed=st_.integers(0, 500), s=st_.floats(0.1, 0.9))
def test_dsnot_keeps_row_counts_and_never_increases_the_gap(seed, s):
    w = _randn(2, 6, 12, seed=seed)
    x = _randn(2, 40, 12, seed=seed + 1).abs()
    mean, var, norm = x.mean(1), x.var(1, unbiased=False), x.norm(dim=1)
    m = st.row_topk_mask(st.wanda_scores(w, norm), s)
    new = st.dsnot(w, m, mean, var, norm, cycles=30)
    assert torch.equal(m.sum(-1), new.sum(-1))
    g0 = st.reconstruction_gap(w, m, mean).abs()
    g1 = st.reconstruction_gap(w, new, mean).abs()
    assert (g1 <= g0 + 1e-5).all()


def test_dsnot_rejects_bad_input():
    w, m = torch.ones(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="x_mean"):
        st.dsnot(w, m, torch.ones(4), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="x_var"):
        st.dsnot(w, m, torch.ones(3), -torch.ones(3), torch.ones(3))
    with pytest.raises(TypeError, match="cycles"):
        st.dsnot(w, m, torch.ones(3), torch.ones(3), torch.ones(3), cycles=1.5)


# ---------------------------------------------------------------------------
# PST, LoRA, SaRA pieces
# ---------------------------------------------------------------------------
def test_pst_importance_is_magnitude_plus_low_rank_plus_structured():
    w = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    a, b = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.5, 1.0]])
    r, c = torch.tensor([0.1, 0.2]), torch.tensor([1.0, -1.0])
    expect = w.abs() + a @ b + r[:, None] + c[None, :]
    assert torch.allclose(st.pst_importance(w, a, b, r, c), expect)
    with pytest.raises(ValueError, match="a must be"):
        st.pst_importance(w, torch.ones(3, 1), b, r, c)


def test_pst_trainable_counts():
    assert st.pst_trainable([(128, 64), (128, 128)], 4, "full") == 2 * (128 * 64 + 128 * 128)
    assert st.pst_trainable([(128, 64)], 4, "pst") == 2 * 4 * 192 + 192
    with pytest.raises(ValueError, match="method"):
        st.pst_trainable([(2, 2)], 1, "lora")


def test_lora_rank_for_budget_and_nuclear_norm():
    assert st.lora_rank_for_budget(128, 64, 819) == 4
    with pytest.raises(ValueError, match="budget"):
        st.lora_rank_for_budget(128, 64, 10)
    x = torch.diag(torch.tensor([3.0, -2.0, 0.5]))
    assert float(st.nuclear_norm(x)) == pytest.approx(5.5)


# ---------------------------------------------------------------------------
# Sparse-IFT
# ---------------------------------------------------------------------------
def test_sparse_wide_factor_and_flops_known_values():
    assert st.sparse_wide_factor(0.75) == pytest.approx(2.0)
    assert st.sparse_wide_factor(0.0) == 1.0
    assert st.mlp_flops([64, 16, 16, 10], [1, 1, 1]) == 2 * (64 * 16 + 16 * 16 + 16 * 10)
    with pytest.raises(ValueError, match="sparsity"):
        st.sparse_wide_factor(1.0)
    with pytest.raises(ValueError, match="densities"):
        st.mlp_flops([4, 4], [1, 1])


@FAST
@given(width=st_.integers(4, 64), s=st_.sampled_from([0.75, 0.9375, 0.984375]))
def test_sparse_wide_plan_keeps_every_layers_flops(width, s):
    sizes, dens = st.sparse_wide_plan(width, s)
    dense = [64 * width, width * width, width * 10]
    assert [d * a * b for d, a, b in zip(dens, sizes[:-1], sizes[1:])] == pytest.approx(dense)


# ---------------------------------------------------------------------------
# the sparse envelope (WGSEF)
# ---------------------------------------------------------------------------
def test_sparse_envelope_known_values():
    x = torch.tensor([3.0, 1.0, 2.0, 0.5])
    assert float(st.sparse_envelope(x, 1)) == pytest.approx(0.5 * 6.5 ** 2)      # ½‖x‖₁²
    assert float(st.sparse_envelope(x, 4)) == pytest.approx(0.5 * 14.25)         # ½‖x‖₂²
    # k = 2: z = (3, 2, 1, 0.5); r = 0 needs z₁ = 3 > 2 + 1 + 0.5 (false); r = 1: ∞ > 6.5/2 ≥ z₁ = 3 holds,
    # so ‖x‖²₍₂₎ = (3 + 2 + 1 + 0.5)²/2
    assert float(st.sparse_envelope(x, 2)) == pytest.approx(0.5 * 6.5 ** 2 / 2)
    # k = 3: r = 0 needs z₂ = 2 > 1 + 0.5 ≥ z₃ = 1: holds, so ‖x‖²₍₃₎ = 9 + 4 + 1.5²
    assert float(st.sparse_envelope(x, 3)) == pytest.approx(0.5 * (9 + 4 + 1.5 ** 2))


@FAST
@given(d=st_.integers(1, 10), seed=st_.integers(0, 1000), data=st_.data())
def test_sparse_envelope_bounds_and_identity(d, seed, data):
    k = data.draw(st_.integers(1, d))
    x = _randn(d, seed=seed).double()
    half_sq = 0.5 * float(x @ x)
    half_l1 = 0.5 * float(x.abs().sum()) ** 2
    val = float(st.sparse_envelope(x, k))
    assert half_sq - 1e-9 <= val <= half_l1 + 1e-9                                 # ½‖x‖² ≤ S_k ≤ ½‖x‖₁²
    xs = x.clone()
    xs[torch.argsort(x.abs())[: d - k]] = 0                                       # keep k entries
    assert float(st.sparse_envelope(xs, k)) == pytest.approx(0.5 * float(xs @ xs))
    if k > 1:
        assert float(st.sparse_envelope(x, k - 1)) >= val - 1e-9                   # decreasing in k


def test_sparse_envelope_is_convex_along_a_segment():
    a, b = _randn(8, seed=1).double(), _randn(8, seed=2).double()
    for t in (0.2, 0.5, 0.8):
        mid = float(st.sparse_envelope(t * a + (1 - t) * b, 3))
        assert mid <= t * float(st.sparse_envelope(a, 3)) + (1 - t) * float(st.sparse_envelope(b, 3)) + 1e-9


def test_sparse_envelope_and_group_norms_reject_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        st.sparse_envelope(torch.ones(3), 4)
    with pytest.raises(ValueError, match="weights"):
        st.group_norms(torch.ones(3, 2), torch.ones(2))
    assert st.group_norms(torch.tensor([[3.0, 4.0]]), torch.tensor([2.0])).tolist() == pytest.approx([10.0])


# ---------------------------------------------------------------------------
# VI, calibration, node masks, SparK masks, ridge probe
# ---------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions():
    mu, sigma = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0])
    ours = st.gaussian_kl(mu, sigma, 1.5)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.5))
    assert torch.allclose(ours, ref)
    assert float(st.gaussian_kl(torch.zeros(()), torch.ones(()), 1.0)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="sigma"):
        st.gaussian_kl(mu, -sigma, 1.0)


def test_expected_calibration_error_known_case():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    # bins of width 0.1: {0.9, 0.9}: acc 0.5, conf 0.9 -> 2·0.4; {0.6}: 1 vs 0.6 -> 0.4; {0.7}: 1 vs 0.7 -> 0.3
    assert float(st.expected_calibration_error(probs, labels, 10)) == pytest.approx((0.8 + 0.4 + 0.3) / 4)
    with pytest.raises(ValueError, match="sum to 1"):
        st.expected_calibration_error(probs * 2, labels)


def test_ssvi_swap_keeps_the_count_and_drops_the_lowest_snr():
    mu = torch.tensor([[0.1, 2.0, -3.0, 0.0, 0.0]])
    sigma = torch.ones(1, 5)
    mask = torch.tensor([[True, True, True, False, False]])
    new = st.ssvi_swap(mu, sigma, mask, 1, torch.Generator().manual_seed(0))
    assert int(new.sum()) == 3 and not bool(new[0, 0]) and bool(new[0, 1]) and bool(new[0, 2])


def test_random_node_masks_and_patch_masks_have_exact_counts():
    m = st.random_node_masks(10, 3, 5, np.random.default_rng(0))
    assert m.shape == (5, 10) and (m.sum(1) == 3).all()
    p = st.patch_mask(7, 4, 0.6, torch.Generator().manual_seed(0))
    assert p.shape == (7, 4, 4) and (p.reshape(7, -1).sum(1) == 16 - 10).all()
    up = st.upsample_mask(torch.tensor([[True, False], [False, True]]), 2)
    assert up.tolist()[0] == [True, True, False, False] and up.shape == (4, 4)
    with pytest.raises(ValueError, match="ratio"):
        st.patch_mask(1, 4, 1.0, torch.Generator())


def test_ridge_probe_matches_scikit_learn():
    from sklearn.linear_model import RidgeClassifier

    x, xt = _randn(2, 120, 7, seed=3), _randn(2, 30, 7, seed=4)
    y = torch.randint(0, 3, (2, 120), generator=torch.Generator().manual_seed(5))
    ours = st.ridge_probe(x, y, xt, 3, alpha=0.7)
    for k in range(2):
        ref = RidgeClassifier(alpha=0.7).fit(x[k].numpy(), y[k].numpy()).predict(xt[k].numpy())
        assert ours[k].tolist() == ref.tolist()
    with pytest.raises(ValueError, match="class indices"):
        st.ridge_probe(x[0], y[0] + 5, xt[0], 3)


# ---------------------------------------------------------------------------
# networks and runners (tiny configurations)
# ---------------------------------------------------------------------------
def test_gru_forward_matches_torch_gru():
    p = st.init_gru(5, [0])
    x = _randn(1, 3, 64, seed=9)
    torch.manual_seed(0)
    g = torch.nn.GRU(8, 5, batch_first=True)
    with torch.no_grad():
        for a, b in (("weight_ih_l0", "w_ih"), ("weight_hh_l0", "w_hh"), ("bias_ih_l0", "b_ih"), ("bias_hh_l0", "b_hh")):
            getattr(g, a).copy_(p[b][0])
        _, h = g(x[0].reshape(3, 8, 8))
    expect = h[0] @ p["w_out"][0].T + p["b_out"][0]
    assert torch.allclose(st.gru_forward(p, x)[0], expect, atol=1e-5)


def test_mirror_is_an_involution_and_flips_rows():
    x = torch.arange(64.0).reshape(1, 64)
    assert st.mirror(x)[0, :8].tolist() == list(range(7, -1, -1))
    assert torch.equal(st.mirror(st.mirror(x)), x)


TINY_PRE = st.PretrainConfig(width=16, steps=20)


def test_runners_tiny_and_deterministic():
    a = st.run_dsnot(st.DSnoTConfig(sparsities=(0.5,), calibration=32, cycles=5, pretrain=TINY_PRE), SEEDS)
    b = st.run_dsnot(st.DSnoTConfig(sparsities=(0.5,), calibration=32, cycles=5, pretrain=TINY_PRE), SEEDS)
    assert np.array_equal(a["rows"][0]["wanda_dsnot_loss"], b["rows"][0]["wanda_dsnot_loss"])
    assert a["rows_kept_equal"] and a["dense_acc"].shape == (2,)
    p = st.run_pst(st.PSTConfig(steps=4, rank=2, pretrain=TINY_PRE), SEEDS)
    assert p["trainable_pst"] == st.pst_trainable([(16, 64), (16, 16)], 2, "pst")
    assert p["pst_density"] == pytest.approx(0.2, abs=0.01)
    s = st.run_sara(st.SaRAConfig(steps=4, rank=2, pretrain=TINY_PRE), SEEDS)
    assert s["sara_trainable"] == s["lora_trainable"] == 2 * (80 + 32)
    f = st.run_sparse_ift(st.IsoFlopConfig(width=8, sparsities=(0.75,), steps=3), SEEDS)
    assert len({arm["flops"] for arm in f["arms"]}) == 1
    g = st.run_group_sparsity(st.GroupSparsityConfig(width=8, keep=2, lambdas=(1e-3,), steps=3, validation=50), SEEDS)
    assert g["kept_exact"] and g["wgsef_acc"].shape == (2,)


def test_more_runners_tiny():
    r = st.run_search(st.SearchConfig(layers=2, search_steps=3, train_steps=3, finetune_steps=2), SEEDS)
    assert r["archs"]["darts"].shape == (2, 2) and r["dass_pruned"].shape == (2,)
    rs = st.run_random_search(st.RandomSearchConfig(width=16, keep=4, candidates=3, steps=5), SEEDS)
    assert rs["kept_exact"] and rs["curves"].shape == (5, 2, 3)
    assert (rs["init_loss_best"] <= rs["init_loss_first"]).all()
    n = st.run_rnn(st.RNNConfig(hidden=4, steps=3, sparsities=(0.0, 0.5), retrain_steps=2), SEEDS)
    assert n["oneshot"].shape == (2, 2)
    v = st.run_ssvi(st.SSVIConfig(hidden=10, steps=4, swap_every=2, test_samples=2), SEEDS)
    assert v["ssvi_active_all"] == [[64, 64], [10, 10]]
    assert (v["ssvi_ece"] >= 0).all()
    k = st.run_spark(st.SparKConfig(c1=2, c2=4, steps=2), SEEDS)
    assert set(k) == {"sparse_acc", "dense_acc", "untrained_acc", "pixels_acc"}


def test_run_experiment_and_presets():
    with pytest.raises(ValueError, match="name must be"):
        st.run_experiment("nope")
    for name, cfg in st.CONFIGS.items():
        assert cfg.preset("full") != cfg.preset("ci"), name
    with pytest.raises(ValueError, match="scale"):
        st.PretrainConfig.preset("big")
    assert set(st.ORDER) == set(st.RUNNERS)


def test_runner_output_feeds_from_seeds_and_a_straddling_interval_is_inconclusive():
    out = st.run_sparse_ift(st.IsoFlopConfig(width=8, sparsities=(0.75,), steps=3), [0, 1, 2])
    est = paired_difference(out["arms"][1]["acc"], out["arms"][0]["acc"])
    assert est.n == 3 and est.kind == "seeds"
    cs = ClaimSet("sparse_training")
    straddle = from_seeds([-0.02, 0.01, 0.03, -0.01, 0.0])
    c = cs.add("x", paper="thangarasa2024sparseift", statement="s", quantity="q", paper_value="v", measured=straddle,
               criterion=AtLeast(0.0))
    assert c.record()["verdict"] == "inconclusive"
    c2 = cs.add("y", paper="li2024ssvi", statement="s", quantity="q", paper_value="v",
                measured=from_seeds([0.05, 0.06, 0.055, 0.07, 0.065]), criterion=AtMost(0.03))
    assert c2.record()["verdict"] == "not reproduced"
