"""Tests for sparsebook.essential_sparsity: masks, schedules, the knee finder, soups and the runners."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsebook import essential_sparsity as es
from sparsebook.essential_sparsity.experiments import _train_parent_cached, _train_transformer_cached, _transformer_data

FAST = settings(max_examples=30, deadline=None)


def _weights(seed, shapes):
    g = torch.Generator().manual_seed(seed)
    return {f"w{i}": torch.randn(*s, generator=g) for i, s in enumerate(shapes)}


shapes_st = st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=4)


# ---------------------------------------------------------------------------
# magnitude_mask
# ---------------------------------------------------------------------------
def test_magnitude_mask_global_removes_the_smallest_of_the_pool():
    w = {"a": torch.tensor([0.1, -3.0, 0.5, 2.0]), "b": torch.tensor([-0.2, 0.05, 4.0])}
    m = es.magnitude_mask(w, 3 / 7, scope="global")
    assert set(m) == {"a", "b"}
    assert m["a"].tolist() == [False, True, True, True]
    assert m["b"].tolist() == [False, False, True]


def test_magnitude_mask_layer_prunes_each_tensor_separately():
    w = {"a": torch.tensor([0.1, -3.0, 0.5, 2.0]), "b": torch.tensor([-0.2, 0.05, 4.0, 7.0])}
    m = es.magnitude_mask(w, 0.5, scope="layer")
    assert m["a"].tolist() == [False, True, False, True]
    assert m["b"].tolist() == [False, False, True, True]


def test_magnitude_mask_ties_remove_the_earlier_weight_first():
    w = [torch.ones(5)]
    m = es.magnitude_mask(w, 0.4)
    assert m[0].tolist() == [False, False, True, True, True]


@FAST
@given(shapes=shapes_st, s=st.floats(0.0, 0.999), seed=st.integers(0, 10_000), scope=st.sampled_from(["global", "layer"]))
def test_magnitude_mask_removes_exactly_round_s_count(shapes, s, seed, scope):
    w = _weights(seed, shapes)
    m = es.magnitude_mask(w, s, scope=scope)
    assert all(m[k].shape == w[k].shape and m[k].dtype == torch.bool for k in w)
    if scope == "global":
        total = sum(t.numel() for t in w.values())
        assert sum(int((~v).sum()) for v in m.values()) == math.floor(s * total + 0.5)
        kept = torch.cat([w[k].abs()[m[k]] for k in w])
        gone = torch.cat([w[k].abs()[~m[k]] for k in w])
        if kept.numel() and gone.numel():
            assert gone.max() <= kept.min()
    else:
        for k in w:
            assert int((~m[k]).sum()) == math.floor(s * w[k].numel() + 0.5)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("s,seed", [(0.0, 0), (0.3, 1), (0.5, 2), (0.77, 3), (0.95, 4)])
def test_magnitude_mask_jax_matches_torch(s, seed, scope):
    w = _weights(seed, [(7, 5), (4, 9), (3, 3)])
    # add exact ties (within and across tensors) to exercise the tie rule
    for t in w.values():
        t.view(-1)[: t.numel() // 2] = 0.25
    mt = es.magnitude_mask(w, s, scope=scope)
    mj = es.magnitude_mask_jax({k: v.numpy() for k, v in w.items()}, s, scope=scope)
    for k in w:
        assert np.array_equal(np.asarray(mj[k]), mt[k].numpy())


# ---------------------------------------------------------------------------
# nm_mask
# ---------------------------------------------------------------------------
def test_nm_mask_known_rows():
    w = torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.0, 0.5, -0.1, 0.2]])
    assert es.nm_mask(w, 2, 4).tolist() == [[False, True, True, False, False, True, False, True]]
    assert es.nm_mask(w, 1, 4).tolist() == [[False, True, False, False, False, True, False, False]]


def test_nm_mask_ties_keep_the_earlier_input():
    assert es.nm_mask(torch.ones(1, 4), 2, 4).tolist() == [[True, True, False, False]]


@FAST
@given(out=st.integers(1, 6), groups=st.integers(1, 5), nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8), (3, 8), (1, 16)]),
       seed=st.integers(0, 10_000), conv=st.booleans())
def test_nm_mask_keeps_exactly_n_of_every_m_and_matches_jax(out, groups, nm, seed, conv):
    n, m = nm
    shape = (out, groups * m, 3, 2) if conv else (out, groups * m)
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    mask = es.nm_mask(w, n, m)
    assert mask.shape == w.shape
    g = mask.movedim(1, -1).reshape(-1, m)
    assert (g.sum(1) == n).all()
    # the kept ones are the largest of their group
    a = w.abs().movedim(1, -1).reshape(-1, m)
    assert (a[g].reshape(-1, n).min(1).values >= a[~g].reshape(-1, m - n).max(1).values).all()


@pytest.mark.parametrize("shape,n,m", [((3, 8), 2, 4), ((5, 16), 1, 4), ((2, 16, 3, 3), 4, 8), ((4, 32), 1, 16)])
def test_nm_mask_jax_matches_torch(shape, n, m):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    w.view(-1)[::3] = 0.5  # ties
    assert np.array_equal(np.asarray(es.nm_mask_jax(w.numpy(), n, m)), es.nm_mask(w, n, m).numpy())


# ---------------------------------------------------------------------------
# random_mask, ERK
# ---------------------------------------------------------------------------
def test_erk_densities_known_two_layer_case():
    # raw ∝ (a+b)/(ab): 64x256 -> 320/16384, 256x256 -> 512/65536;
    d = es.erk_densities([(256, 64), (256, 256)], 0.1)
    assert d[0] / d[1] == pytest.approx((320 / 16384) / (512 / 65536))
    assert d[0] * 16384 + d[1] * 65536 == pytest.approx(0.1 * (16384 + 65536))


def test_erk_keeps_small_layers_dense_and_still_meets_the_budget():
    shapes = [(10, 4), (300, 300), (300, 300)]
    d = es.erk_densities(shapes, 0.2)
    assert d[0] == 1.0
    counts = [np.prod(s) for s in shapes]
    assert sum(di * c for di, c in zip(d, counts)) == pytest.approx(0.2 * sum(counts))


@FAST
@given(shapes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=5),
       density=st.floats(0.01, 1.0), dist=st.sampled_from(["uniform", "erk"]), seed=st.integers(0, 1000))
def test_random_mask_densities_sum_to_the_target(shapes, density, dist, seed):
    d = es.erk_densities(shapes, density)
    counts = [int(np.prod(s)) for s in shapes]
    assert all(0 < di <= 1 for di in d)
    assert sum(di * c for di, c in zip(d, counts)) == pytest.approx(density * sum(counts), rel=1e-9)
    w = [torch.zeros(*s) for s in shapes]
    m = es.random_mask(w, density, dist, seed=seed)
    assert sum(int(x.sum()) for x in m) == math.floor(density * sum(counts) + 0.5)
    m2 = es.random_mask(w, density, dist, seed=seed)
    assert all(torch.equal(a, b) for a, b in zip(m, m2))


def test_random_mask_erk_differs_from_uniform_per_layer():
    w = {"a": torch.zeros(256, 64), "b": torch.zeros(256, 256), "c": torch.zeros(10, 256)}
    u = es.random_mask(w, 0.1, "uniform", seed=0)
    e = es.random_mask(w, 0.1, "erk", seed=0)
    assert abs(u["b"].float().mean().item() - 0.1) < 1e-3
    assert e["c"].float().mean() > 0.5 > e["b"].float().mean()


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------
def test_cubic_schedule_closed_form():
    f = lambda t: es.cubic_sparsity_schedule(t, 0.0, 0.9, 100, 10, 10)  # noqa: E731
    assert f(0) == 0.0 and f(99) == 0.0
    assert f(100) == pytest.approx(0.0)
    assert f(150) == pytest.approx(0.9 + (0.0 - 0.9) * (1 - 5 / 10) ** 3)
    assert f(159) == f(150)  # held between pruning steps
    assert f(200) == pytest.approx(0.9) and f(10_000) == pytest.approx(0.9)


@FAST
@given(si=st.floats(0, 0.5), sf=st.floats(0.5, 0.99), t0=st.integers(0, 50), n=st.integers(1, 20), dt=st.integers(1, 10))
def test_cubic_schedule_is_nondecreasing_and_front_loaded(si, sf, t0, n, dt):
    vals = [es.cubic_sparsity_schedule(t, si, sf, t0, n, dt) for t in range(0, t0 + n * dt + 5)]
    assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:]))
    assert vals[0] == pytest.approx(si) and vals[-1] == pytest.approx(sf)
    half = es.cubic_sparsity_schedule(t0 + (n // 2) * dt, si, sf, t0, n, dt)
    assert half >= si + (sf - si) * (n // 2) / n - 1e-12  # cubic: faster than linear early on


def test_pruning_window():
    assert es.pruning_window(400, 0.25, 0.75, 10) == (100, 20)
    assert es.pruning_window(400, 0.0, 0.5, 10) == (0, 20)


# ---------------------------------------------------------------------------
# The knee
# ---------------------------------------------------------------------------
def _synthetic(knee, slope=5.0, flat_slope=0.0, grid=None):
    x = np.array(grid if grid is not None else [0, .2, .4, .5, .6, .65, .7, .75, .8, .85, .9, .95, .97, .99])
    y = 1.0 - flat_slope * x - slope * np.maximum(0, x - knee)
    return x, y


@pytest.mark.parametrize("knee", [0.5, 0.7, 0.8, 0.9])
def test_hinge_and_delta_knee_recover_a_known_knee(knee):
    x, y = _synthetic(knee, flat_slope=0.02)
    assert es.essential_sparsity_point(x, y) == pytest.approx(knee)
    # delta: the last point within 1e-3 of y0 before the drop
    x2, y2 = _synthetic(knee)
    assert es.essential_sparsity_point(x2, y2, method="delta", delta=1e-3) == pytest.approx(knee)


@pytest.mark.parametrize("knee", [0.6, 0.8])
def test_kneedle_finds_the_corner_of_a_flat_then_steep_curve(knee):
    x, y = _synthetic(knee, slope=20.0)
    y = np.maximum(y, 0.1)
    assert es.essential_sparsity_point(x, y, method="kneedle") == pytest.approx(knee)


@FAST
@given(k=st.integers(2, 11), slope=st.floats(1.0, 50.0), noise_seed=st.integers(0, 100))
def test_hinge_knee_on_noisy_synthetic_curves_is_within_one_grid_step(k, slope, noise_seed):
    x = np.round(np.linspace(0.0, 0.98, 15), 4)
    y = 1.0 - slope * np.maximum(0, x - x[k]) + np.random.default_rng(noise_seed).normal(0, 1e-4, x.size)
    est = es.essential_sparsity_point(x, y)
    assert abs(np.flatnonzero(x == est)[0] - k) <= 1


def test_knee_sharpness_ratio():
    x, y = _synthetic(0.8, slope=5.0, flat_slope=0.1)
    r = es.knee_sharpness(x, y)
    assert r["knee"] == pytest.approx(0.8)
    assert r["slope_before"] == pytest.approx(-0.1) and r["slope_after"] == pytest.approx(-5.1)
    assert r["ratio"] == pytest.approx(51.0)


# ---------------------------------------------------------------------------
# Soups
# ---------------------------------------------------------------------------
def test_average_state_dicts_keeps_the_shared_zeros():
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    states = [{"w": torch.randn(2, 2) * mask, "b": torch.full((2,), float(i))} for i in range(3)]
    soup = es.average_state_dicts(states)
    assert torch.equal(soup["w"] == 0, mask == 0)
    assert torch.allclose(soup["b"], torch.full((2,), 1.0))
    assert torch.allclose(soup["w"], (states[0]["w"] + states[1]["w"] + states[2]["w"]) / 3)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_raises(s):
    with pytest.raises(ValueError, match="sparsity"):
        es.magnitude_mask([torch.ones(3)], s)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="sparsity"):
        es.magnitude_mask([torch.ones(3)], "0.5")
    with pytest.raises(ValueError, match="empty"):
        es.magnitude_mask({}, 0.5)
    with pytest.raises(ValueError, match="empty"):
        es.magnitude_mask([], 0.5)
    with pytest.raises(ValueError, match="scope"):
        es.magnitude_mask([torch.ones(3)], 0.5, scope="row")
    with pytest.raises(ValueError, match="n must be < m"):
        es.nm_mask(torch.ones(2, 4), 4, 4)
    with pytest.raises(ValueError, match="n must be < m"):
        es.nm_mask(torch.ones(2, 4), 5, 4)
    with pytest.raises(ValueError, match="divisible by m"):
        es.nm_mask(torch.ones(2, 6), 2, 4)
    with pytest.raises(ValueError, match="divisible by m"):
        es.nm_mask_jax(np.ones((2, 6)), 2, 4)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        es.nm_mask(torch.ones(8), 2, 4)
    with pytest.raises(ValueError, match="density"):
        es.random_mask([torch.ones(3, 3)], 0.0)
    with pytest.raises(ValueError, match="distribution"):
        es.random_mask([torch.ones(3, 3)], 0.5, "normal")
    with pytest.raises(ValueError, match="s_final"):
        es.cubic_sparsity_schedule(0, 0.5, 0.2, 0, 10, 1)
    with pytest.raises(ValueError, match="n_steps"):
        es.cubic_sparsity_schedule(0, 0.0, 0.5, 0, 0, 1)
    with pytest.raises(ValueError, match="strictly increasing"):
        es.essential_sparsity_point([0, 0.5, 0.4, 0.9], [1, 1, 1, 0])
    with pytest.raises(ValueError, match="method"):
        es.essential_sparsity_point([0, 0.3, 0.6, 0.9], [1, 1, 1, 0], method="elbow")
    with pytest.raises(ValueError, match="at least 4"):
        es.essential_sparsity_point([0, 0.5], [1, 0])
    with pytest.raises(ValueError, match="no weight matrices"):
        es.prunable(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(TypeError, match="OneShotConfig"):
        es.run_oneshot(es.GradualConfig())
    with pytest.raises(ValueError, match="scale"):
        es.OneShotConfig.preset("huge")


# ---------------------------------------------------------------------------
# Runners (tiny configs)
# ---------------------------------------------------------------------------
TINY = es.ParentConfig(width=32, depth=2, steps=150)


def test_run_oneshot_is_deterministic_and_prunes_to_chance_at_the_end():
    cfg = es.OneShotConfig(parent=TINY, sparsities=(0.0, 0.5, 0.8, 0.9, 0.99), nm_patterns=((2, 4), (1, 8)))
    a = es.run_oneshot(cfg, seed=1)
    _train_parent_cached.cache_clear()
    b = es.run_oneshot(cfg, seed=1)
    assert np.array_equal(a["acc_global"], b["acc_global"])
    assert a["acc_global"][0] == pytest.approx(a["dense_acc"])
    assert a["acc_global"][0] > 0.7 and a["acc_global"][-1] < 0.4
    assert [(n, m) for n, m, *_ in a["nm"]] == [(2, 4), (1, 8)]


def test_masked_training_keeps_the_mask_and_gradual_pruning_reaches_the_target():
    cfg = es.GradualConfig(parent=TINY, sparsities=(0.8,), steps=40, dt=5)
    row = es.run_gradual(cfg, seed=0)["rows"][0]
    assert row["gradual_sparsity"] == pytest.approx(0.8, abs=1e-3)
    soup = es.run_soups(es.SoupConfig(parent=TINY, sparsity=0.7, n_ingredients=2, steps=20), seed=0)
    assert soup["soup_sparsity"] == pytest.approx(0.7, abs=1e-3)
    assert soup["soup_sparsity"] == soup["mask_sparsity"] and soup["soup_zeros_on_mask"]
    n = sum(w.numel() for w in es.prunable(es.train_parent(TINY, 0)[0]).values())
    assert soup["mask_sparsity"] == pytest.approx(math.floor(0.7 * n + 0.5) / n, abs=1e-12)


@pytest.mark.parametrize("scale", ["ci", "full"])
def test_every_preset_builds_and_full_is_larger(scale):
    for cls in (es.ParentConfig, es.OneShotConfig, es.ObjectiveConfig, es.DataAmountConfig, es.EmergenceConfig,
                es.RandomPruningConfig, es.GradualConfig, es.JourneyConfig, es.SoupConfig, es.NMTrainConfig,
                es.FinetuneConfig, es.IMPConfig, es.ArchitectureConfig, es.TransformerConfig,
                es.TransformerFinetuneConfig, es.TransformerIMPConfig):
        assert isinstance(cls.preset(scale), cls)
    if scale == "full":
        assert es.ParentConfig.preset("full").steps > es.ParentConfig.preset("ci").steps
        assert len(es.OneShotConfig.preset("full").sparsities) > len(es.OneShotConfig.preset("ci").sparsities)


def test_small_cnn_shapes_and_prunable_pool_leaves_the_head_out():
    m = es.small_cnn(16)
    assert m(torch.zeros(5, 64)).shape == (5, 10)
    pool = es.prunable(m)
    assert [tuple(p.shape) for p in pool.values()] == [(8, 1, 3, 3), (16, 8, 3, 3)]
    assert len(es.prunable(m, include_head=True)) == 3
    with pytest.raises(ValueError, match="arch"):
        es.ParentConfig(arch="resnet")


# ---------------------------------------------------------------------------
# The small Transformer on sorting
# ---------------------------------------------------------------------------
TINY_TF = es.TransformerConfig(length=4, vocab=8, d_model=16, ff=32, layers=2, heads=2, steps=30, n_train=256,
                               n_test=32, sparsities=(0.0, 0.3, 0.6, 0.8, 0.9, 0.95))


def test_sort_task_targets_are_the_sorted_first_half():
    x, y = es.sort_task(50, 5, 10, seed=3)
    assert x.shape == y.shape == (50, 10) and x.dtype == y.dtype == torch.int64
    assert (y[:, :5] == -100).all()
    assert (x[:, 5] == 9).all()  # the separator
    assert torch.equal(y[:, 5:], torch.sort(x[:, :5], dim=1).values)
    assert torch.equal(x[:, 6:], y[:, 5:-1])  # teacher forcing: the input is the target shifted by one
    assert int(x[:, :5].max()) <= 8
    x2, _ = es.sort_task(50, 5, 10, seed=3)
    assert torch.equal(x, x2)


def test_transformer_shapes_and_pool_is_exactly_attention_and_ffn():
    model = TINY_TF.model()
    assert model(torch.zeros(3, 8, dtype=torch.long)).shape == (3, 8, 8)
    pool = es.transformer_pool(model)
    assert list(pool) == [f"blocks.{i}.{n}.weight" for i in range(2) for n in ("qkv", "out", "up", "down")]
    assert [tuple(p.shape) for p in pool.values()][:4] == [(48, 16), (16, 16), (32, 16), (16, 32)]
    names = dict(model.named_parameters())
    assert all(pool[k] is names[k] for k in pool)
    left_out = {k for k, p in names.items() if p.ndim >= 2} - set(pool)
    assert left_out == {"emb.weight", "pos", "head.weight"}  # embeddings and head stay dense
    assert es.prunable(model) == pool
    assert set(es.prunable(model, include_head=True)) == set(pool) | {"head.weight"}


def test_run_transformer_oneshot_prunes_only_the_pool_and_is_deterministic():
    a = es.run_transformer_oneshot(TINY_TF, seed=2)
    _train_transformer_cached.cache_clear()
    b = es.run_transformer_oneshot(TINY_TF, seed=2)
    assert np.array_equal(a["acc"], b["acc"]) and np.array_equal(a["loss"], b["loss"])
    assert np.array_equal(a["train_loss"], b["train_loss"])
    assert a["acc"].shape == a["loss"].shape == (6,) and a["dense_acc"] == a["acc"][0]
    assert a["n_pool"] == 2 * (48 * 16 + 16 * 16 + 32 * 16 + 16 * 32)
    assert set(a["knees"]) == set(es.KNEE_METHODS) and a["sharpness"]["knee"] == a["knees"]["hinge"]
    # pruning leaves the embeddings and head untouched and the pool at exactly the grid sparsity
    model = TINY_TF.model()
    model.load_state_dict(_train_transformer_cached(TINY_TF, 2)[0])
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    data = _transformer_data(TINY_TF, 2)
    masks = es.magnitude_mask({k: p.detach() for k, p in es.transformer_pool(model).items()}, 0.8)
    es.apply_masks(model, masks)
    after = dict(model.named_parameters())
    for k in ("emb.weight", "pos", "head.weight"):
        assert torch.equal(after[k], before[k])
    zeros = sum(int((after[k] == 0).sum()) for k in masks)
    assert zeros == es.n_pruned(0.8, a["n_pool"])
    assert es.evaluate(model, data) == pytest.approx(a["acc"][3])
    c = es.run_transformer_oneshot(TINY_TF, seed=3)
    assert not np.array_equal(a["train_loss"], c["train_loss"])


def test_transformer_config_rejects_bad_values():
    with pytest.raises(ValueError, match="divisible by heads"):
        es.TransformerConfig(d_model=30, heads=4)
    with pytest.raises(ValueError, match="steps"):
        es.TransformerConfig(steps=0)
    with pytest.raises(TypeError, match="length"):
        es.TransformerConfig(length=2.5)
    with pytest.raises(ValueError, match="lr"):
        es.TransformerConfig(lr=0.0)
    with pytest.raises(ValueError, match="sparsities"):
        es.TransformerConfig(sparsities=(0.0, 0.5, 0.4, 0.9))
    with pytest.raises(ValueError, match="sparsities"):
        es.TransformerConfig(sparsities=(0.1, 0.5, 0.8, 0.9))
    with pytest.raises(ValueError, match="vocab"):
        es.sort_task(10, 4, 2)
    with pytest.raises(TypeError, match="TransformerConfig"):
        es.run_transformer_oneshot(es.OneShotConfig())
    with pytest.raises(TypeError, match="TinyTransformer"):
        es.transformer_pool(es.small_cnn(8))
    with pytest.raises(ValueError, match="scale"):
        es.TransformerConfig.preset("huge")
    full, ci = es.TransformerConfig.preset("full"), es.TransformerConfig.preset("ci")
    assert full.d_model > ci.d_model and full.steps > ci.steps and len(full.sparsities) > len(ci.sparsities)


# ---------------------------------------------------------------------------
# Seeds, controls and baselines (issue 14)
# ---------------------------------------------------------------------------
def test_largest_rise_fraction_known_values():
    assert es.largest_rise_fraction([0.0, 0.0, 1.0, 1.0]) == 1.0          # a single jump
    assert es.largest_rise_fraction([0.0, 1.0, 2.0, 3.0]) == pytest.approx(1 / 3)  # a linear rise over 3 steps
    assert es.largest_rise_fraction([0.5, 0.4, 0.3]) == 0.0               # never above its start
    assert es.largest_rise_fraction([0.2, 0.9, 0.65, 0.9]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="values"):
        es.largest_rise_fraction([1.0])
    with pytest.raises(ValueError, match="finite"):
        es.largest_rise_fraction([0.0, float("nan")])


@FAST
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=30))
def test_largest_rise_fraction_is_a_fraction(v):
    r = es.largest_rise_fraction(v)
    assert 0.0 <= r <= 1.0 + 1e-12


def test_average_density_known_values():
    assert es.average_density(lambda t: 0.5, 10) == pytest.approx(0.5)
    assert es.average_density(lambda t: 0.0 if t < 5 else 0.9, 10) == pytest.approx(0.55)
    # a later window keeps more weights on average (the chapter's exact check)
    dens = []
    for a, b in ((0.0, 0.5), (0.25, 0.75), (0.5, 1.0)):
        t0, n = es.pruning_window(400, a, b, 10)
        dens.append(es.average_density(
            lambda t, t0=t0, n=n: es.cubic_sparsity_schedule(t, 0.0, 0.97, t0, n, min(10, max(1, (399 - t0) // n))), 400))
    assert dens[0] < dens[1] < dens[2]
    with pytest.raises(TypeError, match="schedule"):
        es.average_density(0.5, 10)
    with pytest.raises(ValueError, match="steps"):
        es.average_density(lambda t: 0.0, 0)


def test_cubic_schedule_matches_torch_ao_cubic_sl():
    """Zhu & Gupta's formula against torch.ao.pruning's CubicSL (the library oracle), inside the window."""
    from torch.ao.pruning.scheduler.cubic_scheduler import CubicSL

    # ours holds each value for dt steps (pruning happens every dt steps); CubicSL is the continuous
    # curve, so they agree at the pruning steps t0 + k·dt and after the end
    for t in list(range(20, 20 + 10 * 15 + 1, 15)) + [200, 300]:
        ours = es.cubic_sparsity_schedule(t, 0.0, 0.9, 20, 10, 15)
        ref = CubicSL.sparsity_compute_fn(0.0, 0.9, t, 20, 15, 10)
        assert ours == pytest.approx(float(ref), abs=1e-12), t


def test_nm_mask_matches_torch_ao_weight_norm_sparsifier():
    """Our N:M mask keeps the same weights as torch.ao's WeightNormSparsifier (block 1×M, M−N zeros per block)."""
    from torch.ao.pruning import WeightNormSparsifier

    g = torch.Generator().manual_seed(3)
    for n, m in ((2, 4), (1, 8), (3, 8)):
        lin = torch.nn.Sequential(torch.nn.Linear(16, 6))
        with torch.no_grad():
            lin[0].weight.copy_(torch.randn(6, 16, generator=g))
        sp = WeightNormSparsifier(sparsity_level=1.0, sparse_block_shape=(1, m), zeros_per_block=m - n)
        sp.prepare(lin, config=[{"tensor_fqn": "0.weight"}])
        sp.step()
        ref = sp.groups[0]["module"].parametrizations.weight[0].mask.bool()
        assert torch.equal(es.nm_mask(lin[0].weight.detach(), n, m), ref), (n, m)


def test_collect_feeds_from_seeds():
    from sparsebook.stats import from_seeds

    runs = [{"a": {"b": float(k), "c": [k, 2 * k], "rows": [{"x": 10 + k}]}} for k in range(5)]
    assert es.collect(runs, "a", "b").tolist() == [0, 1, 2, 3, 4]
    assert es.collect(runs, "a", "c").shape == (5, 2)
    e = from_seeds(es.collect(runs, "a", "rows", 0, "x"))
    assert e.kind == "seeds" and e.n == 5 and e.value == pytest.approx(12.0) and e.lo < 12 < e.hi
    with pytest.raises(KeyError, match="path"):
        es.collect(runs, "a", "missing")
    with pytest.raises(ValueError, match="runs"):
        es.collect([], "a")


def test_runner_output_over_seeds_gives_an_interval_and_an_inconclusive_comparison():
    """Two tiny seeds of run_oneshot feed from_seeds; a comparison whose paired interval straddles 0 is inconclusive."""
    from sparsebook.claims import AtLeast, ClaimSet
    from sparsebook.stats import from_seeds, paired_difference

    cfg = es.OneShotConfig(parent=TINY, sparsities=(0.0, 0.5, 0.8, 0.9, 0.99), nm_patterns=((2, 4), (1, 8)))
    runs = [{"oneshot": es.run_oneshot(cfg, seed=s)} for s in (0, 1)]
    dense = es.collect(runs, "oneshot", "dense_acc")
    e = from_seeds(dense)
    assert e.n == 2 and e.lo <= dense.mean() <= e.hi
    cs = ClaimSet("essential_sparsity")
    c = cs.add("straddles", paper="jaiswal2023essential", statement="s", quantity="q", paper_value="v",
               measured=paired_difference([0.5, 0.52, 0.49], [0.51, 0.5, 0.5]), criterion=AtLeast(0.0))
    assert c.verdict == "inconclusive"


def test_pgf_and_srste_layers():
    """SR-STE: the forward pass uses w ⊙ m and the gradient reaches every weight; PGF with β = 0 is the N:M mask."""
    from sparsebook.essential_sparsity.experiments import _PGFLinear

    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 3)
    x = torch.randn(5, 8)
    mask = es.nm_mask(lin.weight.detach(), 1, 4).float()
    sr = _PGFLinear(lin, 1, 4, "srste")
    sr.train()
    out = sr(x)
    assert torch.allclose(out, torch.nn.functional.linear(x, lin.weight * mask, lin.bias))
    out.sum().backward()
    assert (lin.weight.grad[mask == 0] != 0).any()  # straight-through: pruned weights get a gradient
    lin.weight.grad = None
    pgf = _PGFLinear(lin, 1, 4, "pgf")
    pgf.beta = 0.0
    out = pgf(x)
    assert torch.allclose(out, torch.nn.functional.linear(x, lin.weight * mask, lin.bias))
    out.sum().backward()
    assert (lin.weight.grad[mask == 0] == 0).all()  # β = 0: no gradient flows to pruned weights


def test_run_nm_training_has_the_srste_baseline_and_is_deterministic():
    cfg = es.NMTrainConfig(parent=TINY, n=1, m=8, steps=20)
    a = es.run_nm_training(cfg, seed=0)
    b = es.run_nm_training(cfg, seed=0)
    assert set(a) == {"n", "m", "oneshot", "fixed", "pgf", "srste"}
    assert a == b
    assert all(0.0 <= a[k] <= 1.0 for k in ("oneshot", "fixed", "pgf", "srste"))


def test_finetune_keeps_the_mask_and_recovers():
    cfg = es.FinetuneConfig(parent=TINY, sparsities=(0.0, 0.5, 0.8, 0.9, 0.95), steps=20)
    r = es.run_finetune(cfg, seed=0)
    assert r["acc"].shape == (5,) and r["acc_oneshot"].shape == (5,)
    assert r["acc_oneshot"][0] == pytest.approx(r["acc"][0], abs=0.05)  # s = 0: only a few more steps
    assert r["acc"][-1] >= r["acc_oneshot"][-1] - 1e-9  # fine-tuning at 95% recovers at least as much
    with pytest.raises(TypeError, match="FinetuneConfig"):
        es.run_finetune(es.OneShotConfig(), seed=0)


def test_run_seed_rejects_bad_arguments():
    with pytest.raises(ValueError, match="part"):
        es.run_seed(0, "ci", part="c")
    with pytest.raises(ValueError, match="seed"):
        es.run_seed(-1, "ci")
    with pytest.raises(ValueError, match="scale"):
        es.run_seed(0, "huge")


def test_masked_training_zeroes_the_gradients_of_pruned_weights():
    from sparsebook.essential_sparsity.experiments import _data, _train_sparse

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    masks = {"0.weight": torch.rand(16, 64) > 0.5}
    _train_sparse(model, _data(0), steps=3, lr=1e-2, batch_size=32, seed=0, names=["0.weight"], masks=masks)
    assert (model[0].weight.detach()[~masks["0.weight"]] == 0).all()
    # the hook is removed afterwards: a plain backward pass gives pruned weights a gradient again
    model.zero_grad()
    model(torch.randn(4, 64)).sum().backward()
    assert (model[0].weight.grad[~masks["0.weight"]] != 0).any()


def test_global_magnitude_mask_matches_torch_nn_utils_prune():
    """The authors' tool, torch.nn.utils.prune.global_unstructured (L1), removes the same weights (no ties)."""
    import torch.nn.utils.prune as tprune

    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 7))
    ws = {"0.weight": net[0].weight.detach().clone(), "2.weight": net[2].weight.detach().clone()}
    for s in (0.3, 0.75, 0.9):
        ours = es.magnitude_mask(ws, s)
        ref_net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 7))
        ref_net.load_state_dict(net.state_dict())
        tprune.global_unstructured([(ref_net[0], "weight"), (ref_net[2], "weight")], pruning_method=tprune.L1Unstructured,
                                   amount=es.n_pruned(s, 20 * 30 + 30 * 7))
        assert torch.equal(ours["0.weight"], ref_net[0].weight_mask.bool())
        assert torch.equal(ours["2.weight"], ref_net[2].weight_mask.bool())


# ---------------------------------------------------------------- explorable figure and try-your-own cell
def test_explorable_layer_densities_are_erk_and_keep_the_budget():
    from sparsebook.essential_sparsity.figures import EXPLORE_SPARSITY

    fig = es.explore_layer_densities()
    assert len(fig.frames) == 7 * 3
    uniform, *layers = fig.frame(width=256, depth=2)
    assert [t["name"] for t in layers] == ["ERK: input layer", "ERK: hidden layer 2", "ERK: head"]
    counts = [np.prod(s) for s in es.mlp_shapes(256, 2)]
    for i, s in enumerate(EXPLORE_SPARSITY):
        kept = sum(t["y"][i] * c for t, c in zip(layers, counts))
        assert kept == pytest.approx((1 - s) * sum(counts), rel=1e-5)
        assert uniform["y"][i] == pytest.approx(1 - s)
    assert all(v <= 1.0 for t in layers for v in t["y"])


def test_try_your_own_layer_densities(capsys):
    import matplotlib.pyplot as plt

    plt.close(es.plot_try_layer_densities(32, 2, 0.9))
    out = capsys.readouterr().out
    assert "head: ERK" in out and "(of 320)" in out
    with pytest.raises(ValueError):
        es.mlp_shapes(0, 2)
    assert es.try_layer_densities().children


# ---------------------------------------------------------------------------
# devices (ci on the CPU, full on a GPU where present), IMP against one-shot
# ---------------------------------------------------------------------------
def test_ci_presets_run_on_the_cpu_and_full_presets_on_the_full_device(monkeypatch):
    for scale, big, small in (("ci", "cpu", "cpu"), ("full", es.full_device(), es.full_device("mlp"))):
        assert es.ParentConfig.preset(scale).device == small
        assert es.ArchitectureConfig.preset(scale).parent.device == big
        assert es.TransformerConfig.preset(scale).device == big
        assert es.RandomPruningConfig.preset(scale).device == small
        assert es.JourneyConfig.preset(scale).device == small
        assert es.IMPConfig.preset(scale).finetune.parent.device == small
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    assert es.full_device() == gpu
    monkeypatch.delenv("SPARSEBOOK_ES_MLP_DEVICE", raising=False)
    assert es.full_device("mlp") == "cpu"
    monkeypatch.setenv("SPARSEBOOK_ES_MLP_DEVICE", "cuda")
    assert es.full_device("mlp") == gpu and es.ParentConfig.preset("full").device == gpu
    monkeypatch.setenv("SPARSEBOOK_ES_MLP_DEVICE", "tpu")
    with pytest.raises(ValueError, match="SPARSEBOOK_ES_MLP_DEVICE"):
        es.full_device("mlp")
    with pytest.raises(ValueError, match="model"):
        es.full_device("gpu")
    for bad in (lambda: es.ParentConfig(device="tpu"), lambda: es.TransformerConfig(device="gpu"),
                lambda: es.RandomPruningConfig(device="cuda:0"), lambda: es.JourneyConfig(device=None)):
        with pytest.raises(ValueError, match="device"):
            bad()


def test_full_presets_run_on_cpu_with_tiny_overrides():
    """Every full-preset runner, shrunk (few steps, narrow), runs end to end on the device it resolves to."""
    from dataclasses import replace

    p = replace(es.ParentConfig.preset("full"), width=8, steps=2)
    sp = (0.0, 0.5, 0.8, 0.9)
    ft = replace(es.FinetuneConfig.preset("full"), parent=p, sparsities=sp, steps=2)
    assert es.run_finetune(ft, 0)["acc"].shape == (4,)
    r = es.run_imp(replace(es.IMPConfig.preset("full"), finetune=ft, sparsities=(0.5, 0.8, 0.9)), 0)
    assert r["sparsities"].tolist() == [0.5, 0.8, 0.9] and r["nested"] and r["exact"]
    tc = replace(es.TransformerConfig.preset("full"), steps=2, n_train=16, n_test=4, sparsities=(0.0, 0.5, 0.8, 0.9))
    assert es.run_transformer_oneshot(tc, 0)["acc"].shape == (4,)
    rc = replace(es.RandomPruningConfig.preset("full"), widths=(8,), steps=2)
    assert set(es.run_random_pruning(rc, 0)["rows"][0]) == {"width", "dense", "uniform", "erk"}
    jc = replace(es.JourneyConfig.preset("full"), width=8, steps=40, dt=2)
    assert len(es.run_journey(jc, 0)["rows"]) == 5
    oc = es.ObjectiveConfig.preset("full")
    ro = es.run_objectives(replace(oc, supervised=p, masked=replace(p, objective="masked"), sparsities=sp), 0)
    assert 0 <= ro["untrained_probe"] <= 1
    rg = es.run_gradual(replace(es.GradualConfig.preset("full"), parent=p, sparsities=(0.9,), steps=20, dt=2), 0)
    assert abs(rg["rows"][0]["gradual_sparsity"] - 0.9) < 1e-3


def test_imp_with_frozen_weights_finds_the_one_shot_masks():
    """With a learning rate so small that no float32 weight moves, every IMP round prunes the parent's weights
    again: the IMP masks are the one-shot masks (overlap exactly 1) and score exactly as run_finetune's."""
    ft = es.FinetuneConfig(parent=TINY, sparsities=(0.0, 0.5, 0.8, 0.9), steps=3, lr=1e-20)
    r = es.run_imp(es.IMPConfig(finetune=ft, sparsities=(0.5, 0.9)), seed=0)
    assert r["overlap"].tolist() == [1.0, 1.0] and r["nested"] and r["exact"]
    f = es.run_finetune(ft, seed=0)
    assert r["acc_imp"].tolist() == [f["acc"][1], f["acc"][3]]
    np.testing.assert_allclose(r["chance"], [0.5, 0.1])


def test_imp_masks_are_nested_and_differ_from_one_shot_after_training():
    ft = es.FinetuneConfig(parent=TINY, sparsities=(0.0, 0.5, 0.8, 0.9), steps=20, lr=1e-2)
    r = es.run_imp(es.IMPConfig(finetune=ft, sparsities=()), seed=0)
    assert r["sparsities"].tolist() == [0.5, 0.8, 0.9] and r["nested"] and r["exact"]
    assert ((r["overlap"] > r["chance"]) & (r["overlap"] < 1.0)).all()
    again = es.run_imp(es.IMPConfig(finetune=ft, sparsities=()), seed=0)  # deterministic
    assert all(np.array_equal(np.asarray(r[k]), np.asarray(v)) for k, v in again.items())
    with pytest.raises(ValueError, match="sparsities"):
        es.IMPConfig(finetune=ft, sparsities=(0.7,))
    with pytest.raises(ValueError, match="sparsities"):
        es.IMPConfig(finetune=ft, sparsities=(0.8, 0.5))
    with pytest.raises(TypeError, match="IMPConfig"):
        es.run_imp(ft, seed=0)


# ---------------------------------------------------------------------------
# The Transformer with the authors' protocol: one-shot mask, then fine-tuning with the mask fixed
# ---------------------------------------------------------------------------
TINY_TF_FT = es.TransformerFinetuneConfig(transformer=TINY_TF, sparsities=(0.0, 0.3, 0.6, 0.8, 0.9), steps=15)


def test_transformer_finetune_keeps_pruned_weights_zero_without_rezeroing():
    r = es.run_transformer_finetune(TINY_TF_FT, seed=2)
    assert r["masked_zero"] and r["sparsity_exact"]
    assert r["acc"].shape == r["acc_oneshot"].shape == (5,) and r["dense_acc"] == r["acc"][0]
    # no fine-tuning on the same masks is exactly the one-shot runner's curve at those sparsities
    one = es.run_transformer_oneshot(TINY_TF, seed=2)
    idx = [list(TINY_TF.sparsities).index(v) for v in TINY_TF_FT.sparsities]
    np.testing.assert_allclose(r["acc_oneshot"], one["acc"][idx], atol=1e-12)
    assert r["plateau_oneshot"] == es.essential_sparsity_point(r["sparsities"], r["acc_oneshot"], method="delta",
                                                               delta=0.01)
    assert set(r["knees"]) == set(r["knees_oneshot"]) == set(es.KNEE_METHODS)
    again = es.run_transformer_finetune(TINY_TF_FT, seed=2)  # deterministic
    assert np.array_equal(r["acc"], again["acc"]) and r["plateau"] == again["plateau"]


def test_transformer_finetune_lowers_the_training_loss_of_a_pruned_model():
    """The fine-tuning is on the per-token loss of the sorted half (a wrong loss, e.g. cross-entropy over
    the sequence axis, would not lower it): at 60% sparsity the pruned model's test loss falls."""
    from sparsebook.essential_sparsity.experiments import _token_ce, _train_sparse

    model = TINY_TF.model()
    model.load_state_dict(_train_transformer_cached(TINY_TF, 2)[0])
    data = _transformer_data(TINY_TF, 2)
    pool = es.transformer_pool(model)
    masks = es.magnitude_mask({k: p.detach() for k, p in pool.items()}, 0.6)
    es.apply_masks(model, masks)
    before = es.evaluate(model, data, "loss")
    _train_sparse(model, data, steps=30, lr=3e-3, batch_size=32, seed=0, names=list(pool), masks=masks,
                  loss_fn=_token_ce)
    assert es.evaluate(model, data, "loss") < before
    assert all((p.detach()[~masks[k]] == 0).all() for k, p in pool.items())


def test_fixed_mask_training_matches_rezeroing_every_step():
    """A pruned weight gets zero gradient and zero Adam moments, so its update is exactly zero: training
    without re-zeroing after each step gives bit-identical weights (with L2 weight decay too)."""
    from sparsebook.essential_sparsity.experiments import _data, _train_sparse

    out = []
    for rezero in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
        masks = {"0.weight": torch.rand(16, 64) > 0.5, "2.weight": torch.rand(10, 16) > 0.3}
        _train_sparse(model, _data(0), steps=10, lr=1e-2, batch_size=32, seed=0, names=list(masks), masks=masks,
                      weight_decay=1e-3, rezero=rezero)
        out.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(out[0][k], out[1][k]) for k in out[0])
    with pytest.raises(ValueError, match="names"):
        _train_sparse(model, _data(0), steps=1, lr=1e-2, batch_size=32, seed=0, names=["0.weight"], masks=masks)


def test_transformer_finetune_config_presets_and_bad_values():
    ci, full = es.TransformerFinetuneConfig.preset("ci"), es.TransformerFinetuneConfig.preset("full")
    grid = es.OneShotConfig.preset("ci").sparsities
    assert set(ci.sparsities) <= set(grid) and full.sparsities == ci.sparsities  # subsets of the chapter's grid
    assert [v for v in grid if v <= 0.8] == [v for v in ci.sparsities if v <= 0.8]  # every grid point up to 0.8
    assert ci.transformer == es.TransformerConfig.preset("ci")  # the chapter's trained Transformer
    assert full.transformer == es.TransformerConfig.preset("full") and full.steps > ci.steps
    assert full.transformer.device == es.full_device()
    for bad in (dict(steps=0), dict(lr=0.0), dict(sparsities=(0.0, 0.5, 0.4, 0.9)), dict(sparsities=(0.2, 0.5, 0.8, 0.9))):
        with pytest.raises(ValueError):
            es.TransformerFinetuneConfig(**bad)
    with pytest.raises(TypeError, match="TransformerConfig"):
        es.TransformerFinetuneConfig(transformer=es.OneShotConfig())
    with pytest.raises(TypeError, match="TransformerFinetuneConfig"):
        es.run_transformer_finetune(TINY_TF, seed=0)


def test_full_transformer_finetune_runs_on_cpu_with_tiny_overrides():
    from dataclasses import replace

    tc = replace(es.TransformerConfig.preset("full"), steps=2, n_train=16, n_test=4, sparsities=(0.0, 0.5, 0.8, 0.9))
    r = es.run_transformer_finetune(replace(es.TransformerFinetuneConfig.preset("full"), transformer=tc,
                                            sparsities=(0.0, 0.5, 0.8, 0.9), steps=2), 0)
    assert r["acc"].shape == (4,) and r["masked_zero"] and r["sparsity_exact"]


# ---------------------------------------------------------------------------
# The full preset's size, IMP for the CNN and the Transformer, weight magnitudes, N:M wrapping
# ---------------------------------------------------------------------------
def test_training_steps_count_the_ci_loops_and_full_stays_within_the_step_budget():
    ci, full = es.training_steps("ci"), es.training_steps("full")
    parts = es.experiments.PARTS
    assert set(ci) == set(full) == set(parts["a"] + parts["b"])
    # measured: a ci `reproduce` run's progress log counted 43,300 optimizer steps over 5 seeds before the
    # CNN/Transformer IMP experiments, which add 4x30 + 4x30 + 4x20 steps per seed
    assert es.N_SEEDS["ci"] * sum(ci.values()) == 43_300 + 5 * (120 + 120 + 80)
    assert ci["gradual"] == 3 * (150 + 150 + 450) and ci["random"] == 3 * 300 + 2 * 300
    assert (es.N_SEEDS["full"] * sum(full.values())
            <= es.FULL_STEP_FACTOR * es.N_SEEDS["ci"] * sum(ci.values()))
    assert all(full[k] >= ci[k] for k in ci)  # nothing is shorter at full
    assert es.TransformerConfig.preset("full").batch_size > es.TransformerConfig.preset("ci").batch_size
    assert es.TransformerConfig.preset("full").n_test > es.TransformerConfig.preset("ci").n_test


def test_cnn_and_transformer_imp_presets_pair_with_their_finetuning():
    for scale in ("ci", "full"):
        cimp, cft = es.IMPConfig.preset(scale, "cnn"), es.FinetuneConfig.preset(scale, "cnn")
        assert cimp.finetune == cft and cft.parent == es.ArchitectureConfig.preset(scale).parent
        assert set(cimp.targets()) <= set(cft.sparsities) and 0.8 in cimp.targets()
        timp = es.TransformerIMPConfig.preset(scale)
        assert timp.finetune == es.TransformerFinetuneConfig.preset(scale)
        assert set(timp.sparsities) <= set(timp.finetune.sparsities) and 0.4 in timp.sparsities
    with pytest.raises(ValueError, match="model"):
        es.FinetuneConfig.preset("ci", "vit")
    with pytest.raises(ValueError, match="sparsities"):
        es.TransformerIMPConfig(sparsities=(0.45,))
    with pytest.raises(ValueError, match="sparsities"):
        es.TransformerIMPConfig(sparsities=(0.6, 0.4))
    with pytest.raises(TypeError, match="TransformerFinetuneConfig"):
        es.TransformerIMPConfig(finetune=es.FinetuneConfig())
    with pytest.raises(TypeError, match="TransformerIMPConfig"):
        es.run_transformer_imp(es.IMPConfig(), 0)


def test_transformer_imp_with_frozen_weights_finds_the_one_shot_masks():
    """No weight moves at lr 1e-20: every IMP round re-prunes the trained model, so its masks are the one-shot
    masks (overlap 1) and score as run_transformer_finetune's fine-tuned one-shot masks."""
    from dataclasses import replace

    ft = replace(TINY_TF_FT, lr=1e-20, steps=2)
    r = es.run_transformer_imp(es.TransformerIMPConfig(finetune=ft, sparsities=(0.3, 0.8)), seed=2)
    assert r["overlap"].tolist() == [1.0, 1.0] and r["nested"] and r["exact"]
    one = es.run_transformer_finetune(ft, seed=2)
    np.testing.assert_array_equal(r["acc_imp"], one["acc"][[1, 3]])


def test_transformer_imp_masks_are_nested_and_pair_in_imp_pairs():
    r = es.run_transformer_imp(es.TransformerIMPConfig(finetune=TINY_TF_FT, sparsities=(0.3, 0.6, 0.9)), seed=2)
    assert r["nested"] and r["exact"] and r["acc_imp"].shape == (3,)
    assert np.all(r["overlap"] >= r["chance"] - 1e-12) and np.all(r["overlap"] <= 1)
    ft = es.run_transformer_finetune(TINY_TF_FT, seed=2)
    runs = [{"transformer_imp": r, "transformer_ft": ft}] * 2
    p = es.imp_pairs(runs, "transformer_imp", "transformer_ft")
    np.testing.assert_array_equal(p["oneshot"][0], ft["acc"][[1, 2, 4]])
    np.testing.assert_array_equal(p["imp"][1], r["acc_imp"])


def test_log_magnitude_histogram_and_threshold_known_values():
    w = {"a": torch.tensor([0.0, 1e-3, -1e-2]), "b": torch.tensor([[0.1, -1.0]])}
    h = es.log_magnitude_histogram(w, edges=(-3.5, -2.5, -1.5, -0.5, 0.5))
    np.testing.assert_allclose(h, [0.2, 0.2, 0.2, 0.2])  # the zero falls in no bin
    assert es.log_magnitude_histogram(w, edges=(-1.5, -0.5)).tolist() == [0.2]
    assert es.magnitude_threshold(w, 0.4) == pytest.approx(1e-3)  # removes 0 and 1e-3
    assert es.magnitude_threshold(w, 0.0) == 0.0
    assert es.magnitude_threshold([torch.tensor([3.0, -1.0, 2.0, 0.5])], 0.5) == 1.0
    assert es.MAGNITUDE_EDGES[0] == -5 and es.MAGNITUDE_EDGES[-1] == 1
    for bad in ((0.0,), (0.0, -1.0), [[0.0, 1.0]]):
        with pytest.raises(ValueError, match="edges"):
            es.log_magnitude_histogram(w, edges=bad)
    with pytest.raises(ValueError, match="sparsity"):
        es.magnitude_threshold(w, 1.0)
    with pytest.raises(TypeError, match="weights"):
        es.log_magnitude_histogram(torch.ones(3))


@FAST
@given(shapes=shapes_st, s=st.floats(0.05, 0.95), seed=st.integers(0, 10_000))
def test_magnitude_threshold_is_the_largest_pruned_magnitude(shapes, s, seed):
    w = _weights(seed, shapes)
    masks = es.magnitude_mask(w, s)
    t = es.magnitude_threshold(w, s)
    pruned = torch.cat([w[k][~masks[k]].abs().reshape(-1) for k in w])
    kept = torch.cat([w[k][masks[k]].abs().reshape(-1) for k in w])
    if pruned.numel():
        assert float(pruned.max()) == pytest.approx(t)
        assert kept.numel() == 0 or float(kept.min()) >= t
    h = es.log_magnitude_histogram(w)
    assert h.shape == (60,) and 0 <= h.sum() <= 1 + 1e-12


def test_nm_wrapping_finds_linear_layers_at_any_depth():
    from sparsebook.essential_sparsity.experiments import _PGFLinear, _wrap_nm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()), torch.nn.Linear(8, 4))
    x = torch.randn(3, 16)
    wrapped = _wrap_nm(model, 1, 4, "pgf")
    assert list(wrapped) == ["0.0"] and isinstance(model[0][0], _PGFLinear)
    wrapped["0.0"].beta = 1.0  # β = 1: the wrapped layer computes the dense layer
    assert list(dict(model.named_parameters())) == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert torch.allclose(model(x), model[1](torch.relu(torch.nn.functional.linear(x, model[0][0].weight, model[0][0].bias))))
    with pytest.raises(TypeError, match="nn.Linear"):
        _wrap_nm(es.small_cnn(4), 1, 4, "pgf")


def test_full_cnn_and_transformer_imp_run_on_cpu_with_tiny_overrides():
    from dataclasses import replace

    cft = es.FinetuneConfig.preset("full", "cnn")
    cft = replace(cft, parent=replace(cft.parent, width=4, steps=2), steps=2)
    r = es.run_imp(replace(es.IMPConfig.preset("full", "cnn"), finetune=cft), 0)
    assert r["sparsities"].tolist() == [0.5, 0.8, 0.9] and r["nested"] and r["exact"]
    tc = replace(es.TransformerConfig.preset("full"), steps=2, n_train=16, n_test=4, d_model=8, ff=16,
                 sparsities=(0.0, 0.5, 0.8, 0.9))
    tft = replace(es.TransformerFinetuneConfig.preset("full"), transformer=tc, steps=2)
    r = es.run_transformer_imp(replace(es.TransformerIMPConfig.preset("full"), finetune=tft), 0)
    assert r["acc_imp"].shape == (3,) and r["nested"] and r["exact"]
    one = es.run_transformer_oneshot(tc, 0)
    assert one["magnitudes"].shape == (60,) and one["threshold_knee"] >= 0


def test_initial_magnitudes_are_the_weights_training_started_from():
    """With a learning rate so small that no float32 weight moves, the trained histogram is the initial one,
    so the initial pool is redrawn exactly as the cached training drew it (MLP, CNN, Transformer)."""
    from dataclasses import replace

    r = es.run_oneshot(es.OneShotConfig(parent=replace(TINY, lr=1e-20, steps=2)), seed=3)
    np.testing.assert_array_equal(r["magnitudes"], r["magnitudes_init"])
    c = es.run_architecture(es.ArchitectureConfig(parent=es.ParentConfig(arch="cnn", width=8, steps=2, lr=1e-20)), seed=3)
    np.testing.assert_array_equal(c["magnitudes"], c["magnitudes_init"])
    t = es.run_transformer_oneshot(replace(TINY_TF, lr=1e-20, steps=2), seed=3)
    np.testing.assert_array_equal(t["magnitudes"], t["magnitudes_init"])
    trained = es.run_oneshot(es.OneShotConfig(parent=TINY), seed=3)
    assert not np.array_equal(trained["magnitudes"], trained["magnitudes_init"])
    assert trained["magnitudes"].sum() == pytest.approx(1.0, abs=1e-3)
