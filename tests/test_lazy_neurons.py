"""Tests of sparsebook.lazy_neurons: statistics, sparsifiers, CETT, sparse forward, recorder, runners."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from sparsebook import lazy_neurons as L
from sparsebook.lazy_neurons.experiments import _mlp_run
from sparsebook.models import mlp
from sparsebook.seeding import seed_everything

finite = st.floats(-10, 10, allow_nan=False, width=32)


# ---------------------------------------------------------------------------
# statistics: known patterns
# ---------------------------------------------------------------------------


def test_nonzero_fraction_counts_a_known_pattern():
    a = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    assert L.nonzero_fraction(a) == pytest.approx(3 / 8)
    assert torch.equal(L.nonzero_fraction(a, per_token=True), torch.tensor([0.5, 0.25]))
    assert L.nonzero_fraction(a, tau=1.5) == pytest.approx(2 / 8)  # strict: |a| > τ
    assert L.nonzero_fraction(a, tau=1.0) == pytest.approx(2 / 8)


def test_dead_fraction_counts_units_never_active():
    a = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    assert L.dead_fraction(a) == pytest.approx(2 / 4)            # units 0 and 2
    assert L.dead_fraction(a, tau=1.5) == pytest.approx(3 / 4)   # only unit 3 exceeds 1.5
    # leading dims are rows: a [batch, tokens, h]
    assert L.dead_fraction(a.reshape(1, 2, 4)) == pytest.approx(0.5)


def test_statistics_on_dicts_and_numpy():
    d = {"x": np.array([[1.0, 0.0]]), "y": torch.zeros(3, 2)}
    assert L.nonzero_fraction(d) == {"x": 0.5, "y": 0.0}
    assert L.dead_fraction(d) == {"x": 0.5, "y": 1.0}


@given(arrays(np.float32, (5, 7), elements=finite))
def test_nonzero_fraction_is_mean_of_per_token(a):
    t = torch.from_numpy(a)
    assert L.nonzero_fraction(t) == pytest.approx(float(L.nonzero_fraction(t, per_token=True).mean()), abs=1e-6)
    assert 0.0 <= L.dead_fraction(t) <= 1 - L.nonzero_fraction(t) + 1e-12 or L.nonzero_fraction(t) == 0


# ---------------------------------------------------------------------------
# the recorder
# ---------------------------------------------------------------------------


def test_recorder_sees_known_activations_without_touching_the_model():
    model = mlp([3, 4, 2])
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4, 3))
        model[0].bias.copy_(torch.tensor([0.0, 0.0, 0.0, -1.0]))
    x = torch.tensor([[1.0, -1.0, 2.0], [-1.0, 1.0, 0.0]])
    acts = L.record_activations(model, x)
    assert list(acts) == ["1"]
    expected = torch.relu(x @ torch.eye(4, 3).T + torch.tensor([0.0, 0.0, 0.0, -1.0]))
    assert torch.equal(acts["1"], expected)
    assert L.nonzero_fraction(acts)["1"] == pytest.approx(3 / 8)
    assert L.dead_fraction(acts)["1"] == pytest.approx(1 / 4)  # unit 3: never above its bias -1
    assert not model[1]._forward_hooks  # hooks removed


def test_recorder_names_transformer_layers():
    torch.manual_seed(0)
    m = L.TinyTransformer(vocab=8, seq_len=5, d_model=8, ff=16, layers=2)
    acts = L.record_activations(m, torch.randint(0, 8, (3, 5)))
    assert set(acts) == {"blocks.0.act", "blocks.1.act"}
    assert acts["blocks.0.act"].shape == (3, 5, 16)
    assert L.nonzero_fraction(acts["blocks.0.act"], per_token=True).shape == (3, 5)


def test_recorder_rejects_a_model_without_mlp():
    with pytest.raises(ValueError, match="no MLP activation"):
        L.record_activations(nn.Linear(3, 2), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="model"):
        L.record_activations("not a model", torch.zeros(1, 3))


def test_mlp_sites_pair_activation_with_down_projection():
    m = L.MLP(4, 8, 3, depth=2)
    sites = L.mlp_sites(m)
    assert list(sites) == ["acts.0", "acts.1"]
    assert sites["acts.1"][1] is m.layers[2]
    seq = mlp([4, 8, 3])
    assert L.mlp_sites(seq)["1"][1] is seq[2]


# ---------------------------------------------------------------------------
# sparsifiers
# ---------------------------------------------------------------------------


@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=finite), st.data())
def test_topk_keeps_exactly_k_per_row_and_the_largest(a, data):
    k = data.draw(st.integers(1, a.shape[1]))
    x = torch.from_numpy(a) + 20.0  # strictly positive: the zeroed entries are exactly the dropped ones
    out = L.topk_activation(x, k)
    assert ((out != 0).sum(-1) == k).all()
    kept = torch.where(out != 0, x, torch.tensor(float("inf"))).min(-1).values
    dropped = torch.where(out == 0, x, torch.tensor(float("-inf"))).max(-1).values
    assert (kept >= dropped).all()
    assert torch.equal(out[out != 0], x[out != 0])


def test_topk_known_values_and_numpy():
    x = np.array([[3.0, -1.0, 2.0, 5.0]], dtype=np.float32)
    np.testing.assert_array_equal(L.topk_activation(x, 2), [[3.0, 0.0, 0.0, 5.0]])


@pytest.mark.parametrize("k", [0, 5, -1])
def test_topk_rejects_k_outside_range(k):
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\]"):
        L.topk_activation(torch.ones(2, 4), k)


def test_topk_rejects_non_int_k():
    with pytest.raises(TypeError, match="k"):
        L.topk_activation(torch.ones(2, 4), 2.0)


def test_cats_threshold_hits_target_on_held_out_data():
    """Calibrated on 4,000 rows, the threshold cuts the target fraction of fresh rows within 0.01."""
    g = torch.Generator().manual_seed(0)
    cal = torch.randn(4000, 64, generator=g)
    held = torch.randn(4000, 64, generator=g)
    for s in (0.3, 0.5, 0.9, 0.99):
        t = L.cats_threshold(cal, s)
        achieved = 1 - L.nonzero_fraction(L.apply_threshold(held, t))
        assert abs(achieved - s) < 0.01
    # closed form: |N(0,1)| median is Φ⁻¹(0.75) ≈ 0.6745
    assert L.cats_threshold(cal, 0.5) == pytest.approx(0.6745, abs=0.01)


def test_cats_threshold_zero_and_dict():
    assert L.cats_threshold(torch.ones(3, 2), 0.0) == 0.0
    out = L.cats_threshold({"a": torch.arange(101.0)}, 0.5)
    assert out == {"a": pytest.approx(50.0)}


@pytest.mark.parametrize("s", [1.0, -0.1, 1.5])
def test_cats_threshold_rejects_sparsity_outside_unit_interval(s):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0.0, 1.0\)"):
        L.cats_threshold(torch.ones(3, 2), s)


def test_chess_thresholds_known_values():
    """One importance cutoff T per layer, tau_i = sqrt(T)/c_i (the authors' rule, ZeonfaiHo/CHESS)."""
    a = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    c = torch.tensor([1.0, 2.0])
    # importances a^2 c^2: channel 0 -> 1, 4, 9, 16; channel 1 -> 4, 16, 36, 64
    # their 0.5-quantile over all 8 entries (linear interpolation) is (9 + 16) / 2 = 12.5
    t = L.chess_thresholds(a, c, 0.5)
    assert torch.allclose(t, torch.tensor([math.sqrt(12.5), math.sqrt(12.5) / 2]), atol=1e-6)
    assert torch.equal(L.chess_thresholds(a, c, 0.0), torch.zeros(2))


def test_chess_gives_channels_different_sparsities_and_the_target_overall():
    g = torch.Generator().manual_seed(1)
    cal = torch.randn(5000, 3, generator=g).abs()
    held = torch.randn(5000, 3, generator=g).abs()
    c = torch.tensor([0.1, 1.0, 10.0])
    t = L.chess_thresholds(cal, c, 0.7)
    cut = (L.apply_threshold(held, t) == 0).double()
    assert float(cut.mean()) == pytest.approx(0.7, abs=0.02)          # the layer's target
    per_channel = cut.mean(0)
    assert per_channel[0] > 0.99 and per_channel[2] < 0.2             # the small-scale channel is cut first
    # the cut is a cut on importance: kept entries are exactly those with (a c)^2 above one cutoff
    imp = (held * c) ** 2
    kept = L.apply_threshold(held, t) != 0
    assert float(imp[kept].min()) >= float(imp[~kept].max()) - 1e-4


def test_chess_thresholds_reject_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        L.chess_thresholds(torch.ones(4, 3), torch.ones(2), 0.5)
    with pytest.raises(ValueError, match="scale"):
        L.chess_thresholds(torch.ones(4, 2), torch.tensor([1.0, 0.0]), 0.5)
    with pytest.raises(ValueError, match="sparsity"):
        L.chess_thresholds(torch.ones(4, 2), torch.ones(2), 1.0)


def test_firing_frequency_core_neurons_and_jaccard():
    a = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    assert torch.allclose(L.firing_frequency(a), torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64))
    # token core (alpha 0.5): units at or above the median of the row's positive activations
    x = torch.tensor([[4.0, 3.0, 1.0, 0.0], [4.0, 1.0, 3.0, -1.0]])
    assert torch.equal(L.core_neurons(x, alpha=0.5, beta=1.0), torch.tensor([True, False, False, False]))
    assert torch.equal(L.core_neurons(x, alpha=0.5, beta=0.5), torch.tensor([True, True, True, False]))
    assert L.jaccard(torch.tensor([True, True, False]), torch.tensor([True, False, True])) == pytest.approx(1 / 3)
    assert L.jaccard(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) == 1.0
    with pytest.raises(ValueError, match="alpha"):
        L.core_neurons(x, alpha=1.0)
    with pytest.raises(ValueError, match="beta"):
        L.core_neurons(x, beta=0.0)
    with pytest.raises(ValueError, match="shape"):
        L.jaccard(torch.ones(2, dtype=torch.bool), torch.ones(3, dtype=torch.bool))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (6, 5), elements=finite), st.floats(0.0, 0.95), st.floats(0.05, 1.0))
def test_core_neurons_shrink_as_alpha_rises(a, alpha, beta):
    """Raising alpha keeps fewer token-core units, so the sentence core can only shrink."""
    t = torch.as_tensor(a)
    lo = L.core_neurons(t, alpha=alpha * 0.5, beta=beta)
    hi = L.core_neurons(t, alpha=alpha, beta=beta)
    assert bool((hi & ~lo).sum() == 0)


def _core_by_rows(a, alpha, beta):
    """The per-token reference of CoreInfer's core neurons: each row's positive entries, their quantile."""
    from sparsebook.lazy_neurons.kernels import _quantile

    a = torch.as_tensor(a).double()
    tc = torch.zeros_like(a, dtype=torch.bool)
    for r in range(a.shape[0]):
        pos = a[r][a[r] > 0]
        if pos.numel():
            tc[r] = (a[r] >= _quantile(pos, alpha)) & (a[r] > 0)
    return tc.double().mean(0) >= beta


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (3, 5, 6), elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]) | finite),
       st.floats(0.0, 0.95), st.floats(0.05, 1.0))
def test_core_neurons_batch_equals_the_row_by_row_reference(a, alpha, beta):
    """All sentences and tokens at once (the full preset's path) give exactly the per-token loop's masks."""
    t = torch.as_tensor(a)
    got = L.core_neurons_batch(t, alpha, beta)
    assert got.shape == (3, 6) and got.dtype == torch.bool
    for i in range(3):
        want = _core_by_rows(t[i], alpha, beta)
        assert torch.equal(got[i], want)
        assert torch.equal(L.core_neurons(t[i], alpha, beta), want)


def test_jaccard_rows_and_batch_errors():
    a = torch.tensor([[True, True, False], [False, False, False]])
    b = torch.tensor([[True, False, True], [False, False, False]])
    got = L.jaccard_rows(a, b)
    assert got.dtype == torch.float64
    assert got.tolist() == [L.jaccard(a[0], b[0]), 1.0] and got[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="shape"):
        L.jaccard_rows(a, b[:, :2])
    with pytest.raises(ValueError, match="3-D"):
        L.core_neurons_batch(torch.ones(4, 3))
    with pytest.raises(ValueError, match="alpha"):
        L.core_neurons_batch(torch.ones(2, 4, 3), alpha=1.0)


def test_fatrelu_and_deft():
    x = torch.tensor([-1.0, 0.05, 0.2, 3.0])
    assert torch.equal(L.fatrelu(x, 0.1), torch.tensor([0.0, 0.0, 0.2, 3.0]))
    assert torch.equal(L.fatrelu(x, 0.0), torch.relu(x))
    a = torch.tensor([0.0, 0.0, 1.0, -2.0])
    assert float(L.deft_density_loss(a)) == pytest.approx(0.5, abs=1e-6)  # ≈ fraction nonzero
    with pytest.raises(ValueError, match="eps"):
        L.deft_density_loss(a, eps=0.0)


def test_prosparse_lambda_quarter_sine_stages():
    b, v = (10, 20), (1.0, 3.0)
    assert L.prosparse_lambda(0, b, v) == 0.0
    assert L.prosparse_lambda(5, b, v) == pytest.approx(math.sin(math.pi / 4))
    assert L.prosparse_lambda(10, b, v) == pytest.approx(1.0)
    assert L.prosparse_lambda(15, b, v) == pytest.approx(1.0 + 2.0 * math.sin(math.pi / 4))
    assert L.prosparse_lambda(100, b, v) == 3.0
    steps = [L.prosparse_lambda(s, b, v) for s in range(30)]
    assert all(y >= x for x, y in zip(steps, steps[1:]))  # non-decreasing, continuous at stage ends
    with pytest.raises(ValueError, match="boundaries"):
        L.prosparse_lambda(0, (10, 5), (1.0, 2.0))


def test_expected_calibration_error_known_values():
    # every prediction has confidence 0.8 and is right 8 times out of 10: ECE 0
    p = torch.tensor([[0.8, 0.2]] * 10)
    y = torch.tensor([0] * 8 + [1] * 2)
    assert L.expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-6)  # float32 0.8
    # confidence 0.9, always wrong: ECE 0.9
    assert L.expected_calibration_error(torch.tensor([[0.9, 0.1]] * 4), torch.ones(4, dtype=torch.long)) == \
        pytest.approx(0.9)


# ---------------------------------------------------------------------------
# Sparsing Law's CETT
# ---------------------------------------------------------------------------


def test_cett_known_values_and_threshold():
    w = torch.eye(3)                                    # ‖W_down[:, i]‖ = 1, W a = a
    a = torch.tensor([[3.0, 4.0, 0.0]])
    assert L.cett(a, w, 0.0) == 0.0                     # nothing cut (the zero contributes nothing)
    assert L.cett(a, w, 3.5) == pytest.approx(3 / 5)    # cut the 3: ‖(3,0,0)‖/‖(3,4,0)‖
    assert L.cett(a, w, 10.0) == pytest.approx(1.0)
    t = L.cett_threshold(a, w, 0.6)
    assert 3.0 <= t < 4.0
    assert L.cett(a, w, t) <= 0.6


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, (4, 6), elements=st.floats(0, 5, width=32)), st.floats(0.0, 1.0))
def test_cett_threshold_meets_its_target(a, target):
    w = torch.as_tensor(np.random.default_rng(0).standard_normal((3, 6)), dtype=torch.float32)
    t = L.cett_threshold(torch.as_tensor(a), w, target)
    assert L.cett(torch.as_tensor(a), w, t) <= target + 1e-9


def test_ppl_p_sparsity_respects_the_loss_budget():
    torch.manual_seed(0)
    m = L.MLP(4, 32, 3)
    x = torch.randn(200, 4)
    y = torch.randint(0, 3, (200,))
    r = L.ppl_p_sparsity(m, x, y, p=1.0)
    assert r["loss_ratio"] <= 1.01 + 1e-9
    assert r["sparsity"] >= L.nonzero_fraction(L.record_activations(m, x)["acts.0"]) * 0 + \
        (1 - L.nonzero_fraction(L.record_activations(m, x)["acts.0"])) - 1e-9  # at least the exact zeros


# ---------------------------------------------------------------------------
# sparse MLP forward
# ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.floats(-2.0, 2.0), st.floats(0.0, 1.0), st.integers(0, 1000))
def test_sparse_forward_equals_dense(rows, shift, dense_above, seed):
    g = torch.Generator().manual_seed(seed)
    d, h = 6, 40
    x = torch.randn(rows, d, generator=g)
    w_up, b_up = torch.randn(h, d, generator=g), torch.randn(h, generator=g) + shift
    w_down, b_down = torch.randn(d, h, generator=g), torch.randn(d, generator=g)
    dense = L.dense_mlp_forward(x, w_up, b_up, w_down, b_down)
    sparse = L.sparse_mlp_forward(x, w_up, b_up, w_down.T.contiguous(), b_down, dense_above=dense_above)
    assert torch.allclose(sparse, dense, atol=1e-5, rtol=1e-5)


def test_sparse_down_all_zero_gives_bias():
    out = L.sparse_down(torch.zeros(2, 5), torch.randn(5, 3), torch.ones(3))
    assert torch.equal(out, torch.ones(2, 3))
    with pytest.raises(ValueError, match="w_down_t"):
        L.sparse_down(torch.zeros(2, 5), torch.randn(4, 3))


def test_sparse_activation_batch_has_exact_sparsity():
    a = L.sparse_activation_batch(3, 200, 0.9, np.random.default_rng(0))
    assert L.nonzero_fraction(a) == pytest.approx(0.1)


# ---------------------------------------------------------------------------
# models, data, training
# ---------------------------------------------------------------------------


def test_activation_module_modes():
    x = torch.tensor([[-1.0, 0.5, 2.0, 1.0]])
    assert torch.equal(L.Activation("relu", k=1)(x), torch.tensor([[0.0, 0.0, 2.0, 0.0]]))
    assert torch.equal(L.Activation("relu", threshold=0.8)(x), torch.tensor([[0.0, 0.0, 2.0, 1.0]]))
    assert (L.Activation("silu")(x) != 0).all()
    with pytest.raises(ValueError, match="name"):
        L.Activation("swish")


def test_bias_free_relu_on_antithetic_inputs_is_exactly_half_active():
    """Symmetry: without biases, unit i is active on exactly one of x and −x (almost surely)."""
    teacher = L.NoisyTeacher(seed=0)
    x, _ = teacher.sample(1000, np.random.default_rng(0), symmetric=True)
    torch.manual_seed(0)
    m = L.MLP(teacher.d, 64, 10, bias=False)
    assert L.nonzero_fraction(L.record_activations(m, x)) == {"acts.0": 0.5}


def test_markov_source_shapes_and_entropy():
    src = L.MarkovSource(vocab=5, seed=0)
    x, y = src.sample(4, 7, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 7)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert 0 < src.entropy() < math.log(5)


def test_training_is_deterministic_and_lowers_the_loss():
    def once():
        seed_everything(0)
        teacher = L.NoisyTeacher(noise=0.0)
        rng = np.random.default_rng(0)
        m = L.MLP(teacher.d, 32, teacher.classes)
        return L.train(m, lambda s: teacher.sample(64, rng), steps=60, lr=1e-2)
    a, b = once(), once()
    np.testing.assert_array_equal(a, b)
    assert a[-10:].mean() < a[:10].mean()


def test_penalty_reaches_the_activations():
    """A large L1 penalty on recorded activations must make the MLP sparser than none."""
    def run(weight):
        seed_everything(0)
        teacher = L.NoisyTeacher(noise=0.0)
        rng = np.random.default_rng(0)
        m = L.MLP(teacher.d, 32, teacher.classes)
        pen = (lambda acts, s: weight * sum(a.abs().mean() for a in acts.values())) if weight else None
        L.train(m, lambda s: teacher.sample(64, rng), steps=80, lr=1e-2, penalty=pen)
        x, _ = teacher.sample(500, np.random.default_rng(1))
        return L.nonzero_fraction(L.record_activations(m, x))["acts.0"]
    assert run(1.0) < run(0.0) - 0.1


# ---------------------------------------------------------------------------
# configs and runners
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [L.EmergenceConfig, L.ConditionsConfig, L.ScalingConfig, L.TopKConfig,
                                 L.ActivationsConfig, L.SpeedConfig, L.MixerConfig, L.TransformerScalingConfig,
                                 L.FamilyConfig, L.TemporalConfig])
def test_presets(cls):
    ci, full = cls.preset("ci"), cls.preset("full")
    assert ci != full
    with pytest.raises(ValueError, match="scale"):
        cls.preset("huge")


def test_sparsity_emerges_in_a_small_mlp_run():
    """The chapter's central effect at a fraction of its size: the noisy teacher, lr 1e-2, fresh data."""
    cfg = L.ConditionsConfig(width=256, steps=300, eval_rows=1000)
    sparse = _mlp_run(cfg, 0, "teacher", 1e-2)["held_out"]
    dense = _mlp_run(cfg, 0, "teacher", 1e-3)["held_out"]
    assert sparse["nonzero"]["acts.0"] < 0.3 and sparse["dead"]["acts.0"] < 0.05
    assert dense["nonzero"]["acts.0"] > 0.45


def test_run_speed_is_exact():
    r = L.run_speed(L.SpeedConfig(sizes=((16, 64),), sparsities=(0.0, 0.9), repeats=3))
    assert r["sizes"]["16×64"]["max_abs_err"] < 1e-5
    assert r["sizes"]["16×64"]["max_err_ratio"] <= 1.0
    np.testing.assert_allclose(r["ideal"], [1.0, 10.0])


def test_run_speed_error_within_rounding_bound_at_full_width():
    """At h = 16,384 (the full preset's widest MLP) the sparse and dense sums differ by no more than the
    float32 dot-product rounding bound 2·γ_h·Σ|a||w| (an absolute 1e-5 does not scale with h)."""
    r = L.run_speed(L.SpeedConfig(sizes=((8, 16384),), sparsities=(0.0, 0.5), repeats=1))
    assert r["sizes"]["8×16384"]["max_err_ratio"] <= 1.0


def _tiny_emergence():
    return L.EmergenceConfig(d_model=8, ff=16, layers=1, tf_batch=8, tf_steps=20, mlp_width=16, mlp_steps=20,
                             eval_rows=128, every=10)


def test_runners_plumbing_on_a_tiny_config():
    """Every runner of the chapter runs end to end and returns fractions in [0, 1]."""
    ec = _tiny_emergence()
    em = L.run_emergence(ec)
    assert list(em["transformer"]["steps"]) == [0, 10, 20]
    assert 0 <= em["mlp"]["final"]["nonzero"]["acts.0"] <= 1
    assert em["mlp"]["firing"].shape == (16,)
    ac = L.run_activations(L.ActivationsConfig(emergence=ec, finetune_steps=12, stage_ends=(4, 8, 12),
                                               targets=(0.5,), ppl_rows=8, ppl_every=10))
    assert ac["models"]["silu"]["nonzero"] == 1.0          # SiLU is never exactly zero
    assert list(ac["ppl_trace"]["step"]) == [10, 20]
    assert abs(ac["thresholds"][0]["cats_sparsity"] - 0.5) < 0.1
    assert abs(ac["thresholds"][0]["chess_sparsity"] - 0.5) < 0.15
    assert set(ac["finetune"]) == {"SiLU, continued", "ReLU substituted", "ReLU + ProSparse L1", "ReLU + constant L1",
                                   "ReLU + DEFT density", "ProSparse + FATReLU"}
    # FATReLU only adds zeros to the ProSparse model
    assert ac["finetune"]["ProSparse + FATReLU"]["nonzero"] <= ac["finetune"]["ReLU + ProSparse L1"]["nonzero"]
    tk = L.run_topk(L.TopKConfig(width=16, k=2, steps=10))
    assert tk["topk"]["clean"]["nonzero"] == pytest.approx(2 / 16)
    sc = L.ScalingConfig(widths=(8, 16), depths=(1, 2), depth_width=8, data_sizes=(64,), width=8, steps=10,
                         eval_rows=64)
    assert len(L.run_scaling(sc)["width_nonzero"]) == 2
    assert len(L.run_data(sc)["nonzero"]) == 2
    assert len(L.run_conditions(L.ConditionsConfig(width=8, steps=10, eval_rows=64))) == len(L.CONDITIONS)
    fam = L.run_family(L.FamilyConfig(emergence=ec, prefix=8, sequences=6))
    assert 0 <= fam["core_same"] <= 1 and fam["core_loss_ratio"] > 0 and fam["flow_chance"] == 0.25


def test_cached_models_are_fresh_copies():
    """Modifying a model a runner returns must not change the cached one (no mutation of cached models)."""
    from sparsebook.lazy_neurons.experiments import _transformer_run

    ec = _tiny_emergence()
    m1 = _transformer_run(ec, 0)[0]
    with torch.no_grad():
        for p in m1.parameters():
            p.zero_()
    m2 = _transformer_run(ec, 0)[0]
    assert any(float(p.detach().abs().sum()) > 0 for p in m2.parameters())


def test_topk_runs_feed_from_seeds():
    """Per-seed runner outputs become estimates over seeds: n, mean, interval and the paired differences."""
    from sparsebook.stats import from_seeds, paired_difference

    cfg = L.TopKConfig(width=16, k=2, steps=10)
    runs = [{"topk": L.run_topk(cfg, s)} for s in range(3)]
    est = L.topk_estimates(runs)
    acc = [r["topk"]["dense"]["clean"]["accuracy"] for r in runs]
    e = est["dense, clean: accuracy"]
    assert e.kind == "seeds" and e.n == 3 and e.value == pytest.approx(np.mean(acc))
    assert e == from_seeds(acc)
    corr = paired_difference([r["topk"]["topk"]["clean"]["corrupted"] for r in runs],
                             [r["topk"]["dense"]["clean"]["corrupted"] for r in runs])
    assert est["corruption"] == corr
    with pytest.raises(ValueError, match="2 seeds"):
        L.emergence_estimates(runs[:1])


def test_a_sweep_within_noise_is_inconclusive():
    """A sweep whose steps straddle the tolerance gives 'inconclusive' with the chapter's criterion."""
    from sparsebook.claims import ClaimSet, Monotone

    runs = [{"scaling": {"widths": np.array([8, 16]), "depths": np.array([1, 2]),
                         "width_nonzero": np.array([0.30, 0.30 + d]), "width_dead": np.zeros(2),
                         "depth_nonzero": np.zeros(2), "depth_alive": np.zeros(2), "depth_dead": np.zeros(2)},
             "transformer_scaling": {k: {"values": np.array([1, 2]), "alive": np.zeros(2), "dead": np.zeros(2)}
                                     for k in ("width", "depth")},
             "data": {"sizes": np.array([64.0, np.inf]), "nonzero": np.zeros(2), "train_nonzero": np.zeros(2),
                      "dead": np.zeros(2), "settings": []}}
            for d in (-0.02, 0.01, -0.03, 0.005, -0.01)]
    sc = L.scaling_estimates(runs)
    c = ClaimSet("lazy_neurons").add("wider-sparser", paper="li2023lazy", statement="wider MLPs are sparser",
                                     quantity="steps", paper_value="decreasing",
                                     measured=sc["width_nonzero"]["steps"],
                                     criterion=Monotone("decreasing", tol=0.005), partial=Monotone("decreasing"))
    assert c.verdict == "inconclusive"


def test_chapter_part_rejects_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        L.chapter_part(-1)
    with pytest.raises(ValueError, match="scale"):
        L.chapter_part(0, "huge")
    with pytest.raises(TypeError, match="cfg"):
        L.run_family(L.EmergenceConfig())


def test_statistics_reject_bad_input():
    with pytest.raises(TypeError, match="activations"):
        L.nonzero_fraction([0.0, 1.0])
    with pytest.raises(TypeError, match="activations"):
        L.nonzero_fraction(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="non-empty"):
        L.dead_fraction(torch.ones(0, 3))
    with pytest.raises(ValueError, match="tau"):
        L.nonzero_fraction(torch.ones(2), tau=-1.0)
    with pytest.raises(ValueError, match="empty dict"):
        L.nonzero_fraction({})


# ---------------------------------------------------------------------------
# the MLP-Mixer
# ---------------------------------------------------------------------------


def test_mixer_patches_and_shapes():
    m = L.TinyMixer(side=8, patch=2, d=8, token_hidden=12, channel_hidden=20, layers=2)
    img = torch.arange(64.0).reshape(1, 8, 8)
    p = m.patches(img)
    assert p.shape == (1, 16, 4)
    assert p[0, 0].tolist() == [0.0, 1.0, 8.0, 9.0]        # top-left 2×2 patch, row-major
    assert p[0, 1].tolist() == [2.0, 3.0, 10.0, 11.0]      # its right neighbour
    assert torch.equal(m.patches(img.reshape(1, 64)), p)   # flat and square inputs agree
    x = torch.randn(5, 64)
    assert m(x).shape == (5, 10)
    acts = L.record_activations(m, x)
    assert acts["blocks.0.token_act"].shape == (5, 8, 12)     # [b, d, token_hidden]
    assert acts["blocks.1.channel_act"].shape == (5, 16, 20)  # [b, tokens, channel_hidden]
    with pytest.raises(ValueError, match="x must be"):
        m(torch.randn(5, 63))


def test_recorder_finds_every_mixer_mlp():
    m = L.TinyMixer(patch=4, d=8, token_hidden=6, channel_hidden=10, layers=3)
    expected = {f"blocks.{i}.{k}" for i in range(3) for k in ("token_act", "channel_act")}
    assert set(L.record_activations(m, torch.randn(4, 64))) == expected
    sites = L.mlp_sites(m)
    assert set(sites) == expected
    act, down = sites["blocks.2.token_act"]
    assert act is m.blocks[2].token_act and down is m.blocks[2].token_down
    assert sites["blocks.0.channel_act"][1] is m.blocks[0].channel_down


def test_mixer_recorder_counts_a_known_pattern():
    """Token-mixing biases of -100 switch every token unit off: the recorder must see exact zeros there."""
    m = L.TinyMixer(patch=4, d=4, token_hidden=6, channel_hidden=10, layers=1)
    with torch.no_grad():
        m.blocks[0].token_up.bias.fill_(-100.0)
        m.blocks[0].channel_up.bias.fill_(100.0)
    acts = L.record_activations(m, torch.randn(3, 64))
    assert L.nonzero_fraction(acts) == {"blocks.0.token_act": 0.0, "blocks.0.channel_act": 1.0}
    assert L.dead_fraction(acts)["blocks.0.token_act"] == 1.0


def _tiny_mixer_cfg(**kw):
    return L.MixerConfig(**{**dict(patch=4, d=8, token_hidden=8, channel_hidden=16, layers=1, steps=12, batch=16,
                                   every=5), **kw})


def test_run_mixer_shapes_and_determinism():
    cfg = _tiny_mixer_cfg()
    a, b = L.run_mixer(cfg, seed=1), L.run_mixer(cfg, seed=1)
    assert list(a["steps"]) == [0, 5, 10, 12]
    assert a["loss"].shape == (12,)
    names = {"blocks.0.token_act", "blocks.0.channel_act"}
    for key in ("train", "held_out", "dead"):
        assert set(a[key]) == names
        for n in names:
            assert a[key][n].shape == (4,)
            assert np.all((0 <= a[key][n]) & (a[key][n] <= 1))
            np.testing.assert_array_equal(a[key][n], b[key][n])
    np.testing.assert_array_equal(a["loss"], b["loss"])
    assert a["final"] == b["final"]
    c = L.run_mixer(cfg, seed=2)
    assert not np.array_equal(a["loss"], c["loss"])          # the seed matters


@pytest.mark.parametrize("kw, err", [(dict(patch=3), ValueError), (dict(patch=0), ValueError),
                                     (dict(steps=0), ValueError), (dict(lr=0.0), ValueError),
                                     (dict(label_noise=1.5), ValueError), (dict(d=2.5), TypeError),
                                     (dict(layers=True), TypeError)])
def test_mixer_config_rejects_bad_values(kw, err):
    with pytest.raises(err, match=next(iter(kw))):
        _tiny_mixer_cfg(**kw)


def test_run_mixer_rejects_bad_arguments():
    with pytest.raises(TypeError, match="cfg"):
        L.run_mixer(L.ConditionsConfig())
    with pytest.raises(ValueError, match="seed"):
        L.run_mixer(_tiny_mixer_cfg(), seed=-1)
    with pytest.raises(ValueError, match="patch"):
        L.TinyMixer(side=8, patch=3)


def test_mlp_emergence_is_run_emergences_mlp_half_bit_for_bit():
    from dataclasses import replace

    ec = replace(L.EmergenceConfig(), tf_steps=4, mlp_width=16, mlp_steps=12, every=4, eval_rows=64, d_model=8, ff=16,
                 layers=1)
    full = L.run_emergence(ec, seed=2)["mlp"]
    alone = L.mlp_emergence(16, 12, ec.mlp_lr, 2, noise=ec.noise, batch=ec.mlp_batch, every=4, eval_rows=64)
    assert list(alone["steps"]) == [0, 4, 8, 12]
    for key in ("held_out", "train", "loss"):
        assert np.array_equal(full[key], alone[key])
    with pytest.raises(ValueError, match="width"):
        L.mlp_emergence(0, 10, 1e-2)
    with pytest.raises(ValueError, match="noise"):
        L.mlp_emergence(8, 10, 1e-2, noise=1.5)


def test_explorable_emergence_and_try_your_own(capsys):
    import matplotlib.pyplot as plt

    from sparsebook.explore import EXPLORE_MIME

    steps = np.array([0, 50, 100])
    runs = [{"emergence": {"transformer": {"steps": steps, "held_out": {"a": np.array([.5, .4, .3 + s / 100]),
                                                                           "b": np.array([.5, .45, .4])},
                                           "train": {"a": np.array([.5, .4, .3]), "b": np.array([.5, .45, .4])}},
                           "mlp": {"steps": steps, "held_out": np.array([.5, .3, .2 + s / 100]),
                                   "train": np.array([.5, .3, .2])}}} for s in range(5)]
    ex = L.explore_emergence(runs)
    payload = ex._repr_mimebundle_()[EXPLORE_MIME]
    payload = payload if isinstance(payload, dict) else __import__("json").loads(payload)
    assert [k["name"] for k in payload["knobs"]] == ["model", "data"]
    first = payload["frames"][0]                      # Transformer, held-out: one trace per block
    assert len(first) == 2 and first[0]["y"][2] == pytest.approx(0.32) and first[0]["lo"][2] < 0.32 < first[0]["hi"][2]
    plt.close(L.plot_try_emergence(width=8, steps=10, lr=1e-2, noise=0.5, seed=0))
    assert "final held-out fraction nonzero" in capsys.readouterr().out
    assert L.try_emergence().children


# ---------------------------------------------------------------------------
# the full scale: device-clean presets and parts
# ---------------------------------------------------------------------------


def test_full_presets_use_the_gpu_when_present_and_ci_stays_on_the_cpu():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    for cls in (L.EmergenceConfig, L.ConditionsConfig, L.ScalingConfig, L.TopKConfig, L.MixerConfig, L.TemporalConfig):
        assert cls.preset("ci").device == "cpu"
        assert cls.preset("full").device == want
    for cls in (L.ActivationsConfig, L.TransformerScalingConfig, L.FamilyConfig, L.DeftLoraConfig):
        assert cls.preset("full").emergence.device == want


def test_parts_hold_every_experiment_once_at_each_scale():
    names = {"emergence", "conditions", "scaling", "data", "transformer_scaling", "mixer", "topk", "activations",
             "family", "temporal", "deft_lora"}
    for scale, parts in L.PARTS_BY_SCALE.items():
        flat = [n for p in parts for n in p]
        assert sorted(flat) == sorted(names), scale
        # the runs that share the cached ReLU Transformer sit in one part
        assert any({"emergence", "activations", "family", "deft_lora"} <= set(p) for p in parts), scale
    assert L.PARTS == L.PARTS_BY_SCALE["ci"]


def test_mlp_runners_take_the_device_of_their_config():
    """A config's device reaches the models and the data (here "cpu" spelled as a torch device string)."""
    cfg = L.ConditionsConfig(width=8, steps=2, eval_rows=16, device="cpu:0")
    a = _mlp_run(cfg, 0, "teacher", 1e-2)
    b = _mlp_run(L.ConditionsConfig(width=8, steps=2, eval_rows=16), 0, "teacher", 1e-2)
    assert a["held_out"] == b["held_out"]
    r = L.run_topk(L.TopKConfig(width=8, k=2, steps=2, device="cpu:0"), 0)
    assert r == L.run_topk(L.TopKConfig(width=8, k=2, steps=2), 0)
    e = L.mlp_emergence(8, 2, 1e-2, 0, every=1, eval_rows=16, device="cpu:0")
    assert e["firing"].shape == (8,) and isinstance(e["firing"], np.ndarray)


# ---------------------------------------------------------------------------
# temporal sparsity: the Delta Activation Layer
# ---------------------------------------------------------------------------


def test_quantize_and_deltas_known_values():
    a = torch.tensor([[0.0, 1.0], [0.04, 1.0], [0.26, 0.5]])
    assert torch.allclose(L.quantize_ste(a, 0.1), torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.3, 0.5]]))
    d = L.temporal_deltas(a, 0.1)
    assert d.shape == (2, 2)
    assert torch.allclose(d, torch.tensor([[0.0, 0.0], [0.3, -0.5]]))
    assert L.delta_density(a, 0.1) == pytest.approx(0.5)


def test_quantize_ste_passes_the_gradient_straight_through():
    a = torch.tensor([0.04, 0.26, -1.3], requires_grad=True)
    (L.quantize_ste(a, 0.1) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(a.grad, torch.tensor([1.0, 2.0, 3.0]))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (3, 6, 4), elements=finite), st.sampled_from([0.05, 0.1, 0.5]))
def test_deltas_telescope_to_the_quantized_activations(a, step):
    """Delta inference reconstructs the quantized network exactly: Q(a_0) + Σ_{s≤t} Δ_s = Q(a_t)."""
    t = torch.as_tensor(a).double()
    q = L.quantize_ste(t, step)
    rec = q[:, :1] + torch.cumsum(L.temporal_deltas(t, step), 1)
    assert torch.allclose(rec, q[:, 1:], atol=1e-9)
    assert 0.0 <= L.delta_density(t, step) <= 1.0
    assert L.delta_density(t[:, :1].expand(3, 6, 4), step) == 0.0      # a constant sequence never changes


def test_delta_kernels_reject_bad_input():
    with pytest.raises(ValueError, match="step"):
        L.quantize_ste(torch.ones(3), 0.0)
    with pytest.raises(TypeError, match="a must"):
        L.temporal_deltas(np.ones((3, 2)), 0.1)
    with pytest.raises(ValueError, match="T >= 2"):
        L.temporal_deltas(torch.ones(1, 4), 0.1)
    with pytest.raises(ValueError, match="penalty"):
        L.TemporalConfig(penalty=2.0)
    with pytest.raises(ValueError, match="frames"):
        L.TemporalConfig(frames=1)


def test_drifting_templates_drift_slowly():
    cfg = L.TemporalConfig(noise=0.0)
    x, y = L.DriftingTemplates(cfg, 0).sample(64, np.random.default_rng(0))
    assert x.shape == (64, cfg.frames, cfg.pixels) and y.shape == (64, cfg.frames)
    assert bool((y == y[:, :1]).all())
    step = (x[:, 1:] - x[:, :-1]).abs().mean()
    assert float(step) < 0.5 * float((x - x.roll(1, 0)).abs().mean())   # consecutive frames alike, sequences not


def test_run_temporal_is_deterministic_and_feeds_the_estimates():
    cfg = L.TemporalConfig(steps=4, eval_sequences=16, width=8)
    runs = [{"temporal": L.run_temporal(cfg, s)} for s in range(2)]
    assert runs[0]["temporal"] == L.run_temporal(cfg, 0)
    assert set(runs[0]["temporal"]) == {"baseline", *cfg.penalties}
    for m in runs[0]["temporal"].values():
        assert 0 <= m["temporal"] <= 1 and 0 <= m["spatial"] <= 1 and 0 <= m["accuracy"] <= 1
    est = L.temporal_estimates(runs, cfg.penalty)
    b, d = runs[0]["temporal"]["baseline"], runs[0]["temporal"][cfg.penalty]
    assert est["improvement"].samples[0] == pytest.approx(b["spatial"] / d["temporal"])
    with pytest.raises(ValueError, match="penalty"):
        L.temporal_estimates(runs, 0.123)


def test_log_ratio_ticks_label_one_and_stay_apart():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sparsebook.lazy_neurons.figures import _log_ratio_ticks

    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.set_ylim(0.9, 1.6)
    _log_ratio_ticks(ax)
    ticks = list(ax.yaxis.get_major_locator().tick_values(0.9, 1.6))
    assert 1 in ticks and len(ticks) >= 3
    assert all(np.log10(b) - np.log10(a) >= np.log10(1.6 / 0.9) / 8 - 1e-12 for a, b in zip(ticks, ticks[1:]))
    plt.close(fig)


# ---------------------------------------------------------------------------
# DEFT with LoRA
# ---------------------------------------------------------------------------


def test_lora_linear_known_values_and_bad_input():
    x = torch.tensor([[1.0, 2.0]])
    w, bias = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0.5, -0.5])
    a, b = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0], [0.0]])       # B A = [[2, 2], [0, 0]]
    # x Wᵀ + bias = [1.5, 1.5]; scale · (x Aᵀ) Bᵀ = 0.5 · 3 · [2, 0] = [3, 0]
    assert torch.allclose(L.lora_linear(x, w, bias, a, b, 0.5), torch.tensor([[4.5, 1.5]]))
    assert torch.equal(L.lora_linear(x, w, bias, a, torch.zeros(2, 1)), nn.functional.linear(x, w, bias))
    with pytest.raises(ValueError, match="shapes"):
        L.lora_linear(x, w, bias, a, torch.zeros(1, 1))
    with pytest.raises(ValueError, match="scale"):
        L.lora_linear(x, w, bias, a, b, -1.0)
    with pytest.raises(TypeError, match="a must be"):
        L.lora_linear(x, w, bias, [[1.0, 1.0]], b)


def test_add_lora_equals_the_base_model_at_init_and_trains_only_adapters():
    seed_everything(0)
    m = L.TinyTransformer(8, 6, 16, 32, 2)
    x = torch.randint(0, 8, (3, 6))
    before = m(x).detach()
    L.add_lora(m, 2)
    assert torch.equal(m(x).detach(), before)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".a", ".b")) and (".up." in n or ".down." in n) for n in trainable)
    with pytest.raises(ValueError, match="rank"):
        L.LoRALinear(nn.Linear(3, 3), 0)


def _tiny_deft(weight, eps):
    ec = L.EmergenceConfig(d_model=16, ff=32, seq_len=8, tf_batch=16, tf_steps=30, every=10, eval_rows=256)
    return L.DeftLoraConfig(emergence=ec, rank=2, steps=40, lr=1e-2, weight=weight, eps=eps)


def test_run_deft_lora_keeps_the_base_frozen_and_the_density_loss_lowers_density():
    r = L.run_deft_lora(_tiny_deft(1.0, 1e-2), seed=0)
    assert not r["peft"]["base_changed"] and not r["deft"]["base_changed"]
    assert r["deft"]["density"] < r["peft"]["density"]
    assert L.run_deft_lora(_tiny_deft(1.0, 1e-2), seed=0) == r                     # deterministic
    r1 = L.run_deft_lora(_tiny_deft(1.0, 1e-2), seed=1)
    est = L.deft_lora_estimates([{"deft_lora": r}, {"deft_lora": r1}])
    assert est["base_frozen"]
    assert est["density_change"].value == pytest.approx(np.mean([x["deft"]["density"] - x["peft"]["density"]
                                                                 for x in (r, r1)]))
    assert est["loss_ratio"].value == pytest.approx(np.mean([x["deft"]["loss"] / x["peft"]["loss"] for x in (r, r1)]))
    with pytest.raises(TypeError, match="DeftLoraConfig"):
        L.run_deft_lora(L.EmergenceConfig(), 0)
    assert L.DeftLoraConfig.preset("full").emergence.device in ("cpu", "cuda")


def test_full_presets_run_their_code_path_with_tiny_sizes():
    """Every full preset, shrunk in size only (its sweeps, activations, depths, parts and device kept), runs
    on the CPU: the full code path (GELU, 4-block models, batched CoreInfer, 5 parts) without full cost."""
    from dataclasses import replace

    from sparsebook.lazy_neurons.experiments import _auto_device, _mlp_fit, _transformer_fit

    full = {c: c.preset("full") for c in (L.EmergenceConfig, L.ActivationsConfig, L.FamilyConfig, L.DeftLoraConfig,
                                          L.TransformerScalingConfig, L.ConditionsConfig, L.ScalingConfig,
                                          L.MixerConfig, L.TopKConfig, L.TemporalConfig)}
    assert len(L.PARTS_BY_SCALE["full"]) == 5 and L.SEEDS["full"] >= 5
    dev = _auto_device()
    e = replace(full[L.EmergenceConfig], d_model=8, ff=16, tf_batch=4, tf_steps=4, mlp_width=8, mlp_steps=4,
                eval_rows=128, every=2, device="cpu")
    assert full[L.EmergenceConfig].device == dev and (e.layers, e.seq_len) == (4, 32)
    try:
        em = L.run_emergence(e, 0)
        assert set(em["transformer"]["final"]["nonzero"]) and len(em["transformer"]["final"]["nonzero"]) == 4
        ac = L.run_activations(replace(full[L.ActivationsConfig], emergence=e, finetune_steps=4, stage_ends=(1, 2, 3),
                                       ppl_rows=4, ppl_every=2), 0)
        assert set(ac["models"]) == {"relu", "gelu", "silu"} and list(ac["ppl_trace"]["step"]) == [2, 4]
        fam = L.run_family(replace(full[L.FamilyConfig], emergence=e, sequences=6), 0)
        assert 0.0 <= fam["core_same"] <= 1.0
        dl = L.run_deft_lora(replace(full[L.DeftLoraConfig], emergence=e, steps=2), 0)
        assert not dl["peft"]["base_changed"]
        ts = L.run_transformer_scaling(replace(full[L.TransformerScalingConfig], emergence=e, ffs=(8, 16)), 0)
        assert list(ts["depth"]["values"]) == [1, 2, 4]
        cond = L.run_conditions(replace(full[L.ConditionsConfig], width=8, steps=2, eval_rows=32, device="cpu"), 0)
        assert len(cond) == len(L.CONDITIONS)
        sc = replace(full[L.ScalingConfig], widths=(4, 8), depth_width=8, width=8, steps=2, eval_rows=32,
                     data_sizes=(16, 64), device="cpu")
        assert list(L.run_scaling(sc, 0)["depths"]) == [1, 2, 3, 4]
        assert len(L.run_data(sc, 0)["sizes"]) == 3
        mx = L.run_mixer(replace(full[L.MixerConfig], d=8, token_hidden=8, channel_hidden=8, steps=2, every=1,
                                 device="cpu"), 0)
        assert len(mx["final"]["nonzero"]) == 8                        # 4 blocks, token and channel MLPs
        tk = L.run_topk(replace(full[L.TopKConfig], width=16, k=2, steps=2, device="cpu"), 0)
        assert set(tk) == {"dense", "topk"}
        tp = L.run_temporal(replace(full[L.TemporalConfig], width=8, steps=2, eval_sequences=8, batch=4,
                                    device="cpu"), 0)
        assert set(tp) == {"baseline", *full[L.TemporalConfig].penalties}
    finally:
        _transformer_fit.cache_clear()
        _mlp_fit.cache_clear()
