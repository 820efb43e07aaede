"""Tests of sparsebook.information_compression: the 12-bit data set, the estimators (bounds,
invariances, Gaussian channels with known mutual information), the coding rate's closed forms,
the batched training, and bad input."""
import hashlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats

from sparsebook import information_compression as ic

X, Y = ic.tishby_dataset()
H_Y = float(stats.entropy(np.bincount(Y), base=2))


# ---------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------
def test_dataset_has_all_4096_inputs_in_binary_order():
    assert X.shape == (4096, 12) and Y.shape == (4096,)
    weights = 2 ** np.arange(11, -1, -1)
    np.testing.assert_array_equal(X.astype(int) @ weights, np.arange(4096))


def test_dataset_has_2118_positive_labels_as_the_original_file():
    assert int(Y.sum()) == 2118
    assert H_Y == pytest.approx(0.99916, abs=1e-5)


def test_labels_match_the_original_file_fingerprint():
    # the fingerprint of the labels in data/var_u.mat of the authors' code (known value, not computed here)
    assert ic.label_fingerprint(Y) == ic.ORIGINAL_LABELS_SHA256
    flipped = Y.copy()
    flipped[2047] ^= 1                                   # one label changed: another fingerprint
    assert ic.label_fingerprint(flipped) != ic.ORIGINAL_LABELS_SHA256
    assert ic.label_fingerprint(Y[::-1]) != ic.ORIGINAL_LABELS_SHA256   # same counts, other order
    assert ic.label_fingerprint([0, 1, 1]) == hashlib.sha256(bytes([0b01100000])).hexdigest()
    with pytest.raises(ValueError, match="y must"):
        ic.label_fingerprint([0, 2])
    with pytest.raises(ValueError, match="y must"):
        ic.label_fingerprint(np.zeros((2, 2)))


def test_icosahedron_structure():
    deg = np.zeros(12, int)
    for i, j in ic.ICOSAHEDRON_EDGES:
        deg[i] += 1
        deg[j] += 1
    assert len(set(ic.ICOSAHEDRON_EDGES)) == 30 and (deg == 5).all()
    anti = {frozenset(p) for p in ic.ANTIPODAL_PAIRS}
    assert len(anti) == 6 and set().union(*anti) == set(range(12))
    assert not anti & {frozenset(e) for e in ic.ICOSAHEDRON_EDGES}


def test_label_rule_by_hand():
    k = X.sum(1)
    assert Y[0] == 0                                 # no bits on
    assert Y[-1] == 1                                # k=12: 1236 + 60 − 660 − 204 = 432 > 429.5
    # one antipodal pair on (bits 0 and 9): k=2, c=1 → 206 − 34 < 429.5
    row = int(2 ** 11 + 2 ** 2)
    assert X[row, 0] == 1 and X[row, 9] == 1 and Y[row] == 0
    p = np.array([Y[k == j].mean() for j in range(13)])
    assert (p[:5] == 0).all() and (p[8:] == 1).all()
    assert (np.diff(p) >= 0).all()                   # P(y=1 | k) increases with the number of ones
    assert p[6] == pytest.approx(532 / 924)


def test_unshuffled_split_skews_the_test_set():
    tr, te = ic.train_test_split(shuffle=False)
    assert len(tr) == 3277 and len(te) == 819
    assert Y[te].mean() == pytest.approx(685 / 819)     # 84% positive against 52% overall
    tr2, te2 = ic.train_test_split(seed=0)
    assert len(np.intersect1d(tr2, te2)) == 0 and len(tr2) + len(te2) == 4096
    assert abs(Y[te2].mean() - Y.mean()) < 0.05
    np.testing.assert_array_equal(tr2, ic.train_test_split(seed=0)[0])


# ---------------------------------------------------------------------------
# Binning estimators
# ---------------------------------------------------------------------------
def test_input_itself_carries_12_bits_and_all_label_information():
    for strategy in ("fixed", "adaptive"):
        ixt, ity = ic.layer_information(X, Y, n_bins=2, strategy=strategy)
        assert ixt == pytest.approx(12.0)
        assert ity == pytest.approx(H_Y)


def test_label_as_a_layer():
    ixt, ity = ic.layer_information(Y.astype(float), Y, n_bins=30, strategy="fixed")
    assert ixt == pytest.approx(H_Y) and ity == pytest.approx(H_Y)


def test_constant_layer_carries_zero_information_not_nan():
    for strategy in ("fixed", "adaptive"):
        assert ic.layer_information(np.full((4096, 3), 0.7), Y, strategy=strategy) == (0.0, 0.0)
    assert ic.kde_information(np.zeros((64, 2)), Y[:64]) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert ic.adaptive_kde_information(np.zeros((64, 2)), Y[:64]) == (0.0, 0.0)


def test_fixed_bins_known_values():
    t = np.array([[0.0], [0.05], [0.5], [0.99], [1.0], [2.0], [-1.0]])
    np.testing.assert_array_equal(ic.fixed_bins(t, 10, (0.0, 1.0))[:, 0], [0, 0, 5, 9, 9, 9, 0])


def test_adaptive_bins_hold_equal_numbers_of_distinct_values():
    t = np.random.default_rng(0).permutation(300).astype(float)[:, None]
    counts = np.bincount(ic.adaptive_bins(t, 30)[:, 0])
    np.testing.assert_array_equal(counts, np.full(30, 10))
    # fewer distinct values than bins: each value its own bin
    assert len(np.unique(ic.adaptive_bins(np.array([[1.0], [2.0], [2.0], [5.0]]), 30))) == 3


# activations on a grid of step 1/64 in [-3, 3]: strictly increasing maps keep distinct values distinct
# in floating point (denormal inputs would let v ** 3 merge values, which no real transform does)
layers = arrays(np.float64, st.tuples(st.integers(8, 200), st.integers(1, 4)),
                elements=st.integers(-192, 192).map(lambda k: k / 64))


@settings(max_examples=40, deadline=None)
@given(layers, st.integers(2, 40), st.integers(0, 2 ** 31))
def test_information_bounds(t, n_bins, seed):
    y = np.random.default_rng(seed).integers(0, 2, size=t.shape[0])
    h_y = float(stats.entropy(np.bincount(y), base=2)) if y.min() != y.max() else 0.0
    for strategy in ("fixed", "adaptive"):
        ixt, ity = ic.layer_information(t, y, n_bins, strategy)
        assert 0.0 <= ity <= h_y + 1e-12
        assert ity <= ixt + 1e-9
        assert ixt <= math.log2(t.shape[0]) + 1e-9


@settings(max_examples=40, deadline=None)
@given(layers, st.integers(2, 40), st.floats(0.1, 5.0), st.floats(-2.0, 2.0))
def test_adaptive_binning_is_invariant_to_increasing_transforms(t, n_bins, scale, shift):
    y = (np.arange(t.shape[0]) % 2)
    ref = ic.layer_information(t, y, n_bins, "adaptive")
    for f in (lambda v: scale * v + shift, lambda v: v ** 3 + v, np.exp, np.arctan):
        assert ic.layer_information(f(t), y, n_bins, "adaptive") == ref


@settings(max_examples=40, deadline=None)
@given(layers, st.integers(2, 40), st.floats(0.1, 5.0), st.floats(-2.0, 2.0))
def test_fixed_binning_on_its_own_range_is_invariant_to_affine_maps(t, n_bins, scale, shift):
    y = (np.arange(t.shape[0]) % 2)
    ref = ic.layer_information(t, y, n_bins, "fixed")
    got = ic.layer_information(scale * t + shift, y, n_bins, "fixed")
    # bin edges move with the data; only values sitting within rounding of an edge may flip
    assert got == pytest.approx(ref, abs=0.2)


def test_fixed_binning_is_sensitive_to_rescaling_and_to_monotone_maps():
    t = np.random.default_rng(1).normal(size=(4096, 3))
    ref = ic.layer_information(t, Y, 30, "fixed", value_range=(-4.0, 4.0))
    shrunk = ic.layer_information(0.1 * t, Y, 30, "fixed", value_range=(-4.0, 4.0))
    assert ref[0] - shrunk[0] > 3.0                 # a rescaled layer loses bits under a fixed range
    own = ic.layer_information(t, Y, 30, "fixed")
    warped = ic.layer_information(np.exp(2 * t), Y, 30, "fixed")
    assert own[0] - warped[0] > 1.0                 # ... and under a monotone warp of its own range
    assert ic.layer_information(np.exp(2 * t), Y, 30, "adaptive") == ic.layer_information(t, Y, 30, "adaptive")


def bi_awgn_information(delta: float, sigma: float = 1.0) -> float:
    """I(T;Y) in bits for Y ~ Bernoulli(1/2), T = ±delta/2 + N(0, sigma²) (numerical integration)."""
    def integrand(t):
        p0 = stats.norm.pdf(t, -delta / 2, sigma)
        p1 = stats.norm.pdf(t, delta / 2, sigma)
        m = 0.5 * (p0 + p1)
        return 0.5 * p0 * math.log2(p0 / m) + 0.5 * p1 * math.log2(p1 / m) if m > 0 else 0.0
    return integrate.quad(integrand, -delta - 12 * sigma, delta + 12 * sigma, limit=200)[0]


@pytest.mark.parametrize("delta", [0.5, 2.0, 4.0])
def test_binary_gaussian_channel_information(delta):
    rng = np.random.default_rng(2)
    n = 200_000
    y = rng.integers(0, 2, n)
    t = (y - 0.5) * delta + rng.normal(size=n)
    exact = bi_awgn_information(delta)
    for strategy in ("fixed", "adaptive"):
        _, ity = ic.layer_information(t, y, 30, strategy)
        assert ity == pytest.approx(exact, abs=0.02), (strategy, ity, exact)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_bivariate_gaussian_information(rho):
    rng = np.random.default_rng(3)
    n = 200_000
    u = rng.normal(size=n)
    v = rho * u + math.sqrt(1 - rho ** 2) * rng.normal(size=n)
    exact = -0.5 * math.log2(1 - rho ** 2)
    got = ic.pair_information(u, v, 30, "adaptive")
    # adaptive bins of a 30×30 grid (continuous samples have no ties, so equal distinct-value counts
    # are equal masses here): plug-in bias + discretization, both < 0.06 bits here
    assert got == pytest.approx(exact, abs=0.06)


# ---------------------------------------------------------------------------
# KDE estimators
# ---------------------------------------------------------------------------
def test_kde_of_well_separated_points_reaches_log_n():
    t = np.arange(64, dtype=float)[:, None]           # spacing 1 >> sigma
    y = np.arange(64) % 2
    ixt, ity = ic.kde_information(t, y, noise_var=1e-3)
    assert ixt == pytest.approx(6.0, abs=1e-9)
    assert ity == pytest.approx(1.0, abs=1e-9)


def test_kde_information_matches_a_direct_double_loop():
    rng = np.random.default_rng(4)
    t = rng.normal(scale=0.05, size=(40, 2))
    y = rng.integers(0, 2, 40)
    var = 1e-3

    def h(a):
        k = np.exp(-((a[:, None, :] - a[None, :, :]) ** 2).sum(-1) / (2 * var))
        return -np.mean(np.log(k.mean(1)))

    ref_ixt = h(t) / math.log(2)
    ref_ity = (h(t) - sum((y == c).mean() * h(t[y == c]) for c in (0, 1))) / math.log(2)
    assert ic.kde_information(t, y, var) == pytest.approx((ref_ixt, ref_ity), rel=1e-10)


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(4, 60), st.integers(1, 3)), elements=st.floats(-2, 2, width=32)),
       st.floats(0.01, 100.0))
def test_adaptive_kde_is_invariant_to_rescaling_and_fixed_kde_is_bounded(t, c):
    y = np.arange(t.shape[0]) % 2
    a = ic.adaptive_kde_information(t, y, 0.1)
    b = ic.adaptive_kde_information(c * t, y, 0.1)
    assert b == pytest.approx(a, abs=1e-9)
    ixt, ity = ic.kde_information(t, y)
    assert 0 <= ity <= 1.0 + 1e-9 and ixt <= math.log2(t.shape[0]) + 1e-9


def test_kde_information_falls_with_noise():
    t = np.random.default_rng(5).normal(size=(300, 2))
    y = np.arange(300) % 2
    vals = [ic.kde_information(t, y, v)[0] for v in (1e-3, 1e-2, 1e-1, 1.0)]
    assert all(a > b for a, b in zip(vals, vals[1:]))


# ---------------------------------------------------------------------------
# Coding rate
# ---------------------------------------------------------------------------
def test_coding_rate_closed_form_isotropic():
    d, n, c, eps = 5, 200, 3.0, 0.5
    q, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(n, d)))   # q.T has orthonormal rows
    z = math.sqrt(c) * q.T                                              # Z Zᵀ = c I
    assert ic.coding_rate(z, eps) == pytest.approx(d / 2 * math.log(1 + d * c / (n * eps ** 2)), rel=1e-12)


def test_coding_rate_closed_form_rank_one():
    d, n, eps = 4, 50, 0.3
    u = np.arange(1.0, d + 1)
    v = np.linspace(-1, 1, n)
    z = np.outer(u, v)
    expect = 0.5 * math.log(1 + d / (n * eps ** 2) * (u @ u) * (v @ v))
    assert ic.coding_rate(z, eps) == pytest.approx(expect, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(2, 40), st.floats(0.05, 2.0), st.integers(0, 2 ** 31))
def test_rate_reduction_is_non_negative_and_rotation_invariant(d, n, eps, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(d, n))
    labels = rng.integers(0, 3, n)
    assert ic.rate_reduction(z, labels, eps) >= -1e-9            # concavity of logdet
    u, _ = np.linalg.qr(rng.normal(size=(d, d)))
    assert ic.coding_rate(u @ z, eps) == pytest.approx(ic.coding_rate(z, eps), rel=1e-9, abs=1e-12)
    assert ic.class_coding_rate(z, np.zeros(n, int), eps) == pytest.approx(ic.coding_rate(z, eps))


def test_class_mean_cosine():
    assert ic.class_mean_cosine(np.array([[1.0, 0.0], [-2.0, 0.0]]), np.array([0, 1])) == pytest.approx(-1.0)
    assert ic.class_mean_cosine(np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]]), np.array([0, 1, 1])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="two classes"):
        ic.class_mean_cosine(np.ones((3, 2)), np.zeros(3, int))


def test_normalize_columns():
    z = np.array([[3.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(ic.normalize_columns(z), [[0.6, 0.0], [0.8, 0.0]])


# ---------------------------------------------------------------------------
# Training, trajectories and statistics
# ---------------------------------------------------------------------------
def test_log_epochs():
    e = ic.log_epochs(500, 10)
    assert e[0] == 0 and e[-1] == 500 and (np.diff(e) > 0).all()


def test_networks_in_a_batch_are_independent_and_deterministic():
    a = ic.train_networks(("tanh",), [3], epochs=15, lr=5e-3, n_records=3)
    b = ic.train_networks(("relu", "tanh", "elu"), [1, 3, 2], epochs=15, lr=5e-3, l2=[1e-3, 0.0, 0.0], n_records=3)
    c = ic.train_networks(("tanh",), [3], epochs=15, lr=5e-3, n_records=3)
    np.testing.assert_allclose(b.loss[1], a.loss[0], rtol=1e-5)
    np.testing.assert_array_equal(a.loss, c.loss)
    for la, lc in zip(a.layers, c.layers):
        np.testing.assert_array_equal(la, lc)
    assert a.loss[0, -1] < a.loss[0, 0]
    # softmax output sums to one; tanh layers within (-1, 1)
    np.testing.assert_allclose(a.layers[-1].sum(-1), 1.0, rtol=1e-5)
    assert np.abs(a.layers[0]).max() < 1
    assert list(b.select("tanh")) == [1] and list(b.select("relu", 1e-3)) == [0]


def test_forward_matches_torch_sequential():
    params = ic.init_weights(7)
    seq = torch.nn.Sequential()
    for i, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b[:, 0])
        seq.append(lin)
        if i < len(params) - 1:
            seq.append(torch.nn.ELU())
    batched = [(w[None], b[None]) for w, b in params]
    x = torch.from_numpy(X[:100])
    out = ic.forward(batched, x.T.contiguous(), ("elu",))[-1][0].T
    np.testing.assert_allclose(out.detach().numpy(), seq(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_centred_softplus_is_zero_at_zero():
    assert float(ic.activation_fn("centred_softplus")(torch.zeros(1))) == pytest.approx(0.0, abs=1e-7)


def test_compression_known_values():
    ixt = np.array([[1.0, 5.0], [3.0, 4.0], [2.0, 6.0]])     # (R=3, L=2)
    np.testing.assert_allclose(ic.compression(ixt), [1.0, 0.0])
    assert ic.compression(np.array([[1.0 + 1e-15], [1.0]]))[0] == 0.0    # rounding residue is no compression


def test_correlation_contrast_r_matches_scipy_pearsonr():
    rng = np.random.default_rng(8)
    comp, acc = rng.normal(size=(30, 4)), rng.normal(size=30)
    out = ic.correlation_contrast(comp, acc, n_boot=50)
    ref = [stats.pearsonr(comp[:, l], acc).statistic for l in range(4)]
    np.testing.assert_allclose(out["r"], ref, rtol=1e-12)
    assert out["contrast"] == pytest.approx(ref[-1] - np.mean(ref[:-1]))


@settings(max_examples=30, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 60), st.integers(1, 6)), elements=st.integers(-3, 40)))
def test_joint_codes_equal_numpy_unique_rows_and_entropy_equals_scipy(d):
    _, ref = np.unique(d, axis=0, return_inverse=True)
    np.testing.assert_array_equal(ic.joint_codes(d), ref.reshape(-1))       # same codes, same (lexicographic) order
    _, counts = np.unique(ref, return_counts=True)
    assert ic.entropy_bits(ic.joint_codes(d)) == pytest.approx(float(stats.entropy(counts, base=2)), abs=1e-12)


def test_presets_are_valid():
    for scale in ("ci", "full"):
        ic.PlaneConfig.preset(scale).validate()
        ic.GeneralizationConfig.preset(scale).validate()
    with pytest.raises(ValueError, match="scale"):
        ic.PlaneConfig.preset("huge")


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    t = np.random.default_rng(9).normal(size=(10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="n_bins"):
        ic.layer_information(t, y, n_bins=1)
    with pytest.raises(ValueError, match="one label per row"):
        ic.layer_information(t, y[:9])
    bad = t.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ic.layer_information(bad, y)
    with pytest.raises(ValueError, match="strategy"):
        ic.layer_information(t, y, strategy="quantile")
    with pytest.raises(ValueError, match="value_range"):
        ic.layer_information(t, y, value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="value_range"):
        ic.layer_information(t, y, strategy="adaptive", value_range=(0.0, 1.0))
    with pytest.raises(TypeError, match="integer class labels"):
        ic.layer_information(t, y + 0.5)
    with pytest.raises(ValueError, match="noise_var"):
        ic.kde_information(t, y, noise_var=0.0)
    with pytest.raises(ValueError, match="eps"):
        ic.coding_rate(t.T, eps=-1.0)
    with pytest.raises(ValueError, match="shape"):
        ic.coding_rate(np.zeros(5), eps=1.0)
    with pytest.raises(ValueError, match="activation"):
        ic.activation_fn("swish")
    with pytest.raises(ValueError, match="same length"):
        ic.train_networks(("tanh", "relu"), [0], epochs=2, lr=1e-3)
    with pytest.raises(ValueError, match="l2"):
        ic.train_networks(("tanh",), [0], epochs=2, lr=1e-3, l2=-1.0)
    with pytest.raises(ValueError, match="train_fraction"):
        ic.train_test_split(train_fraction=1.0)
    with pytest.raises(TypeError, match="PlaneConfig"):
        ic.run_information_plane({"epochs": 3})
    with pytest.raises(ValueError, match="kde_activations"):
        ic.PlaneConfig(activations=("relu",), kde_activations=("tanh",)).validate()


# ---------------------------------------------------------------------------
# The authors' conventions, the correlation contrast, runners feeding the statistics
# ---------------------------------------------------------------------------
def test_authors_initialization_gain():
    # the authors' code: truncated normal, stddev = he / sqrt(fan_in), he = 2 for the ReLU family
    unit = ic.init_weights(4)
    he = ic.init_weights(4, gain=2.0)
    for (wu, bu), (wh, bh) in zip(unit, he):
        np.testing.assert_allclose(wh.numpy(), 2.0 * wu.numpy(), rtol=1e-6)
        assert (bh == 0).all()
    assert ic.AUTHORS_GAIN["relu"] == 2.0 and ic.AUTHORS_GAIN["tanh"] == 1.0
    w = torch.cat([ic.init_weights(s, sizes=(400, 400), gain=2.0)[0][0].reshape(-1) for s in range(3)])
    # std of a normal truncated at 2 std: 0.8796 of the untruncated std
    assert float(w.std()) == pytest.approx(0.8796 * 2.0 / 20.0, rel=0.02)
    assert float(w.abs().max()) <= 2 * 2.0 / 20.0 + 1e-6
    with pytest.raises(ValueError, match="gain"):
        ic.init_weights(0, gain=0.0)
    with pytest.raises(ValueError, match="init"):
        ic.train_networks(("tanh",), [0], epochs=2, lr=1e-3, init="xavier")


def test_l2_penalty_is_the_authors_convention():
    # 0.015 * sum of tf.nn.l2_loss (= ||W||^2 / 2) over all weights but the output layer's
    w = [torch.ones(2, 3, 4), 2 * torch.ones(2, 2, 3), 5 * torch.ones(2, 2, 2)]
    got = ic.l2_penalty(w, torch.tensor([0.015, 0.0]))
    np.testing.assert_allclose(got.numpy(), [0.015 * (12 / 2 + 4 * 6 / 2), 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        ic.l2_penalty(w[:1], 1.0)


def test_split_seed_is_the_one_used():
    a = ic.train_networks(("tanh",), [0], epochs=3, lr=1e-3, n_records=2, split_seed=0)
    b = ic.train_networks(("tanh",), [0], epochs=3, lr=1e-3, n_records=2, split_seed=5)
    assert not np.allclose(a.loss, b.loss)


def test_correlation_contrast_known_values():
    rng = np.random.default_rng(1)
    acc = rng.normal(size=40)
    noise = rng.normal(size=(40, 2))
    comp = np.column_stack([noise[:, 0], np.zeros(40), 3 * acc + 1])     # hidden: noise and a constant layer
    out = ic.correlation_contrast(comp, acc, n_boot=500)
    assert out["r"][-1] == pytest.approx(1.0)
    assert math.isnan(out["r"][1]) and math.isnan(out["lo"][1])          # constant layer: no correlation
    r0 = np.corrcoef(noise[:, 0], acc)[0, 1]
    assert out["r"][0] == pytest.approx(r0)
    assert out["contrast"] == pytest.approx(1.0 - r0)
    assert out["contrast_lo"] <= out["contrast"] <= out["contrast_hi"]
    assert out["lo"][0] <= r0 <= out["hi"][0]
    with pytest.raises(ValueError, match="comp"):
        ic.correlation_contrast(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="level"):
        ic.correlation_contrast(comp, acc, level=1.5)


def test_runner_output_feeds_from_seeds_and_an_inconclusive_verdict():
    from sparsebook.claims import AtLeast, ClaimSet
    from sparsebook.stats import from_seeds

    cfg = ic.PlaneConfig(activations=("tanh", "relu"), l2_activations=("relu",), n_models=2, epochs=6,
                         n_records=3, bins_sweep=(10,), sweep_activations=("tanh", "relu"), kde_points=64,
                         kde_records=2, kde_sweep=(("fixed", 0.01),), init_activations=("relu",))
    res = ic.run_information_plane(cfg, seed=0)
    e = ic.seed_compression(res, "adaptive", "relu")
    ref = from_seeds(ic.hidden_compression(res.info[("adaptive", "relu", 0.0)]))
    assert e.kind == "seeds" and e.n == 2 and e.value == pytest.approx(ref.value) and e.lo == pytest.approx(ref.lo)
    assert ic.seed_compression(res, "fixed", "tanh", n_bins=10).n == 2
    assert ic.seed_compression(res, "", "relu", kde=("fixed", 0.01)).n == 2
    assert res.loss[("relu", cfg.l2)].shape == (2, 6) and res.split_seed == 0
    assert len(ic.sweep_results(res).values) > 0 and len(ic.compression_results(res).values) == 6
    cs = ClaimSet("information_compression")
    cs.add("straddles", paper="chelombiev2019", statement="s", quantity="q", paper_value="v",
           measured=ic.correlation_estimate(0.1, -0.2, 0.4, 16), criterion=AtLeast(0.0))
    assert cs.claims[0].verdict == "inconclusive"


def test_crate_kernels_known_values():
    rng = np.random.default_rng(3)
    d, n = 8, 6
    z = rng.normal(size=(d, n))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    u = q.T.reshape(2, 4, d).transpose(0, 2, 1)                   # two orthonormal 4-dim subspaces
    # R^c(Z; U) = sum_k R(U_k^T Z), each with its own p / (n eps^2)
    want = sum(ic.coding_rate(u[k].T @ z, 0.5) for k in range(2))
    assert ic.subspace_coding_rate(z, u, 0.5)[0] == pytest.approx(want, rel=1e-10)
    # step 0 leaves the tokens; identical tokens are a fixed point of attention
    np.testing.assert_allclose(ic.mssa_step(z, u, 0.0)[0], z)
    same = np.repeat(z[:, :1], n, axis=1)
    np.testing.assert_allclose(ic.mssa_step(same, u, 0.7)[0], same, atol=1e-12)
    # a full step of attention averaging compresses the tokens of each subspace
    zn = ic.unit_tokens(z)
    assert ic.subspace_coding_rate(ic.mssa_step(zn, u, 1.0), u, 0.5)[0] < ic.subspace_coding_rate(zn, u, 0.5)[0]
    # ISTA with D = I: ReLU(z - eta * lam)
    np.testing.assert_allclose(ic.ista_step(z, np.eye(d), 0.1, 0.1)[0], np.maximum(z - 0.01, 0))
    np.testing.assert_allclose(np.linalg.norm(ic.unit_tokens(z)[0], axis=0), 1.0)
    with pytest.raises(ValueError, match="u must"):
        ic.subspace_coding_rate(z, u[:, :3], 0.5)
    with pytest.raises(ValueError, match="step"):
        ic.mssa_step(z, u, 1.5)
    with pytest.raises(ValueError, match="dictionary"):
        ic.ista_step(z, np.eye(3))


def test_crate_block_runner_feeds_steps():
    from sparsebook.stats import steps

    cfg = ic.CrateConfig(n_words=32, layers=3, n_seeds=2)
    runs = [ic.run_crate_block(cfg, s) for s in range(3)]
    assert runs[0]["rc_out"].shape == (4,) and runs[0]["sparsity"].shape == (3,)
    np.testing.assert_allclose(runs[0]["rc_in"], runs[0]["rc_out"][:-1])
    st = steps(np.array([r["rc_out"] for r in runs]))
    assert len(st) == 3 and all(e.n == 3 for e in st)
    assert ((r["sparsity"] > 0) & (r["sparsity"] < 1)).all() if (r := runs[0]) else False
    with pytest.raises(ValueError, match="heads"):
        ic.CrateConfig(d=10, heads=4).validate()
    with pytest.raises(TypeError, match="CrateConfig"):
        ic.run_crate_block({"d": 4})


# ---------------------------------------------------------------- explorable figure and try-your-own cell
@pytest.fixture(scope="module")
def tiny_plane():
    cfg = ic.PlaneConfig(activations=("tanh", "relu"), l2_activations=("relu",), n_models=3, epochs=6,
                         n_records=3, bins_sweep=(10,), sweep_activations=("tanh", "relu"), kde_points=64,
                         kde_records=2, kde_sweep=(("fixed", 0.01),), init_activations=("relu",))
    return ic.run_information_plane(cfg, seed=0)


def test_explorable_binning_holds_the_seed_means_and_intervals(tiny_plane):
    from sparsebook.stats import from_seeds

    fig = ic.explore_binning(tiny_plane)
    assert [k["values"] for k in fig.knobs] == [["tanh", "relu"], ["fixed", "adaptive"], [10, 30]]
    layers = fig.frame(activation="relu", estimator="adaptive", n_bins=10)
    assert len(layers) == 6 and all(t["kind"] == "seeds" for t in layers)
    ixt = tiny_plane.bins_sweep[("adaptive", "relu", 10)][..., 0]
    e = from_seeds(ixt[:, -1, 2])
    assert layers[2]["y"][-1] == pytest.approx(e.value, rel=1e-5)
    assert layers[2]["lo"][-1] == pytest.approx(e.lo, rel=1e-5, abs=1e-6)
    assert layers[2]["hi"][-1] == pytest.approx(e.hi, rel=1e-5, abs=1e-6)
    default = fig.frame()
    assert default[0]["y"] == pytest.approx(tiny_plane.info[("fixed", "tanh", 0.0)][..., 0][:, :, 0].mean(0), rel=1e-5)


def test_try_your_own_binning(tiny_plane, capsys):
    import matplotlib.pyplot as plt

    plt.close(ic.plot_try_binning(tiny_plane, "tanh", "fixed", 30, 0.0))
    assert "compression" in capsys.readouterr().out
    plt.close(ic.plot_try_binning(tiny_plane, "relu", "adaptive", 4, 0.1))
    with pytest.raises(ValueError, match="activation"):
        ic.plot_try_binning(tiny_plane, "elu")
    with pytest.raises(ValueError, match="noise"):
        ic.plot_try_binning(tiny_plane, "tanh", noise=-1.0)
    assert ic.try_binning(tiny_plane).children


def test_unit_gain_runs_and_their_table(tiny_plane):
    cfg = tiny_plane.config
    assert set(tiny_plane.init_sweep) == {(e, a) for e in ("fixed", "adaptive") for a in cfg.init_activations}
    # the unit-gain runs are train_networks(init="unit") on the same seeds and split, nothing else
    nets = ic.train_networks(("relu",) * cfg.n_models, list(range(cfg.n_models)), cfg.epochs, cfg.lr, 0.0,
                             cfg.n_records, split_seed=0, init="unit")
    np.testing.assert_array_equal(tiny_plane.init_sweep[("adaptive", "relu")],
                                  ic.information_trajectory(nets, "adaptive", cfg.n_bins))
    w2, w1 = ic.init_weights(3, gain=2.0), ic.init_weights(3, gain=1.0)
    assert all(torch.equal(a[0], 2 * b[0]) for a, b in zip(w2, w1))        # same draw, scaled
    e = ic.seed_compression(tiny_plane, "adaptive", "relu", init="unit")
    assert e.n == cfg.n_models
    assert e.value == pytest.approx(ic.hidden_compression(tiny_plane.init_sweep[("adaptive", "relu")]).mean())
    table = ic.init_results(tiny_plane).values
    assert len(table) == 6 * len(cfg.init_activations)
    d = table["adaptive binning, relu: gain 2 minus unit (paired)"]
    assert d.value == pytest.approx(ic.seed_compression(tiny_plane, "adaptive", "relu").value - e.value)
    with pytest.raises(ValueError, match="init"):
        ic.seed_compression(tiny_plane, "adaptive", "relu", init="he")


def test_original_split_runs_and_their_table(tiny_plane):
    cfg = tiny_plane.config
    assert set(tiny_plane.split_sweep) == {(e, a) for e in ("fixed", "adaptive") for a in cfg.split_activations}
    # the authors' split is the first 80% of the rows, in order
    tr, te = ic.train_test_split(shuffle=False)
    np.testing.assert_array_equal(tr, np.arange(3277))
    np.testing.assert_array_equal(te, np.arange(3277, 4096))
    # the original-split runs are train_networks(shuffle=False) on the same seeds, nothing else
    nets = ic.train_networks(("tanh",) * cfg.n_models, list(range(cfg.n_models)), cfg.epochs, cfg.lr, 0.0,
                             cfg.n_records, shuffle=False)
    np.testing.assert_array_equal(tiny_plane.split_sweep[("fixed", "tanh")],
                                  ic.information_trajectory(nets, "fixed", cfg.n_bins))
    np.testing.assert_array_equal(tiny_plane.split_acc[("test", "tanh")], nets.test_acc)
    _, y = ic.tishby_dataset()
    pred_ok = nets.test_acc * len(te)
    assert np.allclose(pred_ok, np.round(pred_ok))                         # accuracy over the 819 test rows
    assert y[te].mean() > 0.8 > y[tr].mean()                                # the skew the chapter describes
    table = ic.split_results(tiny_plane).values
    assert len(table) == 6 * len(cfg.split_activations)
    d = table["tanh: test accuracy, original minus shuffled (paired)"]
    assert d.value == pytest.approx(nets.test_acc.mean() - tiny_plane.test_acc[("tanh", 0.0)].mean())
    with pytest.raises(ValueError, match="split_activations"):
        ic.PlaneConfig(activations=("tanh", "relu"), split_activations=("elu",)).validate()


def test_coefficient_of_variation_known_values_and_bootstrap():
    assert ic.coefficient_of_variation([1.0, 3.0]) == pytest.approx(math.sqrt(2) / 2)
    np.testing.assert_allclose(ic.coefficient_of_variation(np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]])), [0.0, 0.5])
    for bad in ([1.0], [1.0, -1.0], [1.0, np.nan]):
        with pytest.raises(ValueError, match="x|mean"):
            ic.coefficient_of_variation(bad)
    x = np.random.default_rng(1).gamma(16.0, 1 / 16.0, size=200)            # cv of a gamma(16) is 1/4
    e = ic.variation_across_seeds(x, n_boot=500, seed=0)
    assert e.kind == "seeds" and e.n == 200 and e.lo <= e.value <= e.hi
    assert e.lo < 0.25 < e.hi and e.hi - e.lo < 0.15
    assert ic.variation_across_seeds(x, n_boot=500, seed=0).lo == e.lo     # seeded: deterministic
    with pytest.raises(ValueError, match="values"):
        ic.variation_across_seeds(np.ones((3, 2)))


def test_init_activations_must_be_trained():
    with pytest.raises(ValueError, match="init_activations"):
        ic.PlaneConfig(activations=("tanh", "relu"), l2_activations=("tanh",), sweep_activations=("tanh",),
                       kde_activations=("tanh",), init_activations=("elu",)).validate()
    with pytest.raises(ValueError, match="init"):
        ic.train_networks(("relu",), [0], 1, 1e-3, init="he")


def test_figures_draw_on_a_tiny_plane(tiny_plane):
    import matplotlib.pyplot as plt

    fig = ic.plot_activation_histograms(tiny_plane)
    assert len(fig.axes) == len(tiny_plane.sample_layers)
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    plt.close(fig)
    fig = ic.plot_coding_rate(tiny_plane)
    assert len(fig.axes) == 3 and len(fig.axes[2].patches) == len(tiny_plane.config.activations)
    plt.close(fig)
    plt.close(ic.plot_l2(tiny_plane))
