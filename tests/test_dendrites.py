"""Tests of sparsebook.dendrites: exact values, properties, Monte Carlo agreement, bad input."""
from fractions import Fraction
from math import comb, log

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import hypergeom

from sparsebook import dendrites as dd
from sparsebook.dendrites import figures as _figures  # noqa: F401  (dd.figures)


def exact_false_match(n, a, s, theta) -> Fraction:
    """Σ_{b≥θ} C(s,b) C(n−s,a−b) / C(n,a) in exact rational arithmetic."""
    num = sum(comb(s, b) * comb(n - s, a - b) for b in range(theta, min(s, a) + 1) if a - b <= n - s)
    return Fraction(num, comb(n, a))


def exact_false_negative(a, s, theta, v) -> Fraction:
    num = sum(comb(s, b) * comb(a - s, v - b) for b in range(s - theta + 1, min(s, v) + 1) if v - b <= a - s)
    return Fraction(num, comb(a, v))


def log_fraction(f: Fraction) -> float:
    return log(f.numerator) - log(f.denominator)


# Points spanning 1 down to 1e-300 and below, including the paper's settings.
POINTS = [
    (10_000, 300, 24, 12), (10_000, 64, 24, 12), (200_000, 2_000, 20, 10), (2_048, 40, 20, 10),
    (500, 250, 24, 12), (1_000, 10, 20, 5), (100_000, 200, 100, 60), (190_000, 950, 50, 20),
    (50_000, 100, 100, 100), (1_000_000, 500, 200, 150), (30, 10, 10, 1), (30, 30, 10, 10),
]


@pytest.mark.parametrize("n,a,s,theta", POINTS)
def test_false_match_matches_exact_rational_to_1e9(n, a, s, theta):
    exact = exact_false_match(n, a, s, theta)
    if exact == 0:
        assert dd.false_match_probability(n, a, s, theta) == 0.0
        return
    ref = log_fraction(exact)
    got = dd.log_false_match_probability(n, a, s, theta)
    # relative error of the probability = |Δ log P|
    assert abs(got - ref) <= 1e-9, (got, ref)
    if ref > log(1e-300):
        p = dd.false_match_probability(n, a, s, theta)
        assert abs(p - float(exact)) <= 1e-9 * float(exact)


def test_values_below_1e300_stay_exact_in_log_space():
    n, a, s, theta = 1_000_000, 500, 200, 150
    ref = log_fraction(exact_false_match(n, a, s, theta))
    assert ref < log(1e-300)          # the point really is below the double range
    assert abs(dd.log_false_match_probability(n, a, s, theta) - ref) <= 1e-9 * abs(ref)


def test_authors_printed_value_is_reproduced():
    assert dd.false_match_probability(10_000, 300, 24, 12) == pytest.approx(8.37584522709849e-13, rel=1e-12)


@pytest.mark.parametrize("a,s,theta,v", [(64, 24, 12, 16), (64, 24, 12, 32), (128, 32, 20, 40), (40, 40, 1, 40),
                                         (64, 24, 24, 1), (64, 24, 12, 0), (300, 50, 25, 150)])
def test_false_negative_matches_exact_rational(a, s, theta, v):
    exact = exact_false_negative(a, s, theta, v)
    got = dd.false_negative_probability(a, s, theta, v)
    assert got == pytest.approx(float(exact), rel=1e-10, abs=1e-300)


def test_scipy_hypergeom_agrees_where_it_is_accurate():
    n, a, s = 2_000, 60, 24
    theta = np.arange(1, 15)
    ours = dd.false_match_probability(n, a, s, theta)
    np.testing.assert_allclose(ours, hypergeom.sf(theta - 1, n, a, s), rtol=1e-8)


def test_vectorised_equals_scalar_calls():
    n = np.array([1_000, 10_000, 100_000])[:, None]
    theta = np.array([4, 8, 12])[None, :]
    grid = dd.false_match_probability(n, 50, 24, theta)
    assert grid.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert grid[i, j] == dd.false_match_probability(int(n[i, 0]), 50, 24, int(theta[0, j]))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), data=st.data())
def test_false_match_is_a_probability_decreasing_in_theta(n, data):
    a = data.draw(st.integers(0, n))
    s = data.draw(st.integers(0, n))
    p = dd.false_match_probability(n, a, s, np.arange(0, s + 1))
    p = np.atleast_1d(p)
    assert p[0] == 1.0                         # θ = 0: always fires
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) <= 1e-15)          # raising θ never raises the error


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_tail_sums_to_one_with_the_complement(n, data):
    a = data.draw(st.integers(0, n))
    s = data.draw(st.integers(1, n))
    theta = data.draw(st.integers(1, s))
    # P(X ≥ θ) + P(X ≤ θ−1) = 1, the latter from the symmetric law of s − X (cells *not* hit)
    upper = dd.false_match_probability(n, a, s, theta)
    lower = float(dd.hypergeom_log_sf(s - theta + 1, n, n - a, s))
    assert upper + np.exp(lower) == pytest.approx(1.0, abs=1e-12)


def test_false_negative_is_zero_when_noise_cannot_remove_enough_cells():
    # removing v <= s − θ cells can never silence the segment
    assert dd.false_negative_probability(64, 24, 12, 12) == 0.0
    assert dd.false_negative_probability(64, 24, 12, 13) > 0.0
    assert dd.false_negative_probability(64, 24, 12, 64) == 1.0


def test_union_synapse_count_closed_form_and_limits():
    assert dd.union_synapse_count(10_000, 24, 1) == pytest.approx(24.0)
    assert dd.union_synapse_count(10_000, 24, 0) == 0.0
    assert dd.union_synapse_count(100, 10, 2) == pytest.approx(100 * (1 - 0.9 ** 2))
    assert dd.union_synapse_count(1_000, 50, 10_000) == pytest.approx(1_000.0)


def test_union_synapse_count_matches_simulation():
    rng = np.random.default_rng(0)
    n, s, m = 500, 30, 12
    sizes = [len(set(np.concatenate([rng.choice(n, s, replace=False) for _ in range(m)]))) for _ in range(2000)]
    expected = dd.union_synapse_count(n, s, m)
    assert abs(np.mean(sizes) - expected) < 4 * np.std(sizes) / np.sqrt(len(sizes))


@pytest.mark.parametrize("point", [(1000, 50, 24, 8), (1000, 100, 24, 10), (300, 30, 20, 4)])
def test_monte_carlo_false_match_within_sampling_error(point):
    r = dd.simulate_false_match(*point, trials=1_000_000, seed=1)
    assert r.trials >= 1_000_000
    assert abs(r.z) < 4.5


@pytest.mark.parametrize("point", [(64, 24, 12, 24), (128, 32, 20, 40)])
def test_monte_carlo_false_negative_within_sampling_error(point):
    r = dd.simulate_false_negative(*point, trials=500_000, seed=2)
    assert abs(r.z) < 4.5


def test_monte_carlo_detects_a_wrong_formula():
    # the simulation must be able to fail: it rejects a neighbouring (wrong) threshold
    r = dd.simulate_false_match(1000, 100, 24, 10, trials=1_000_000, seed=3)
    wrong = dd.false_match_probability(1000, 100, 24, 9)
    sd = np.sqrt(wrong * (1 - wrong) / r.trials)
    assert abs(r.estimate - wrong) / sd > 10


def test_monte_carlo_is_deterministic_for_a_seed():
    a = dd.simulate_false_match(500, 40, 20, 6, trials=100_000, seed=7)
    b = dd.simulate_false_match(500, 40, 20, 6, trials=100_000, seed=7)
    assert a.hits == b.hits


def test_numpy_peer_agrees_roughly():
    p = dd.simulate_false_match_numpy(200, 40, 20, 6, trials=4000, seed=0)
    exact = dd.false_match_probability(200, 40, 20, 6)
    assert abs(p - exact) < 5 * np.sqrt(exact * (1 - exact) / 4000)


@pytest.mark.parametrize("call,match", [
    (lambda: dd.false_match_probability(100, 101, 10, 5), "a must be <= n"),
    (lambda: dd.false_match_probability(100, 10, 10, 11), "theta must be <= s"),
    (lambda: dd.false_match_probability(100, 10, 101, 5), "s must be <= n"),
    (lambda: dd.false_match_probability(100, -1, 10, 5), "a must be >= 0"),
    (lambda: dd.false_negative_probability(64, 24, 12, 65), "v must be <= a"),
    (lambda: dd.false_negative_probability(20, 24, 12, 5), "s must be <= a"),
    (lambda: dd.false_negative_probability(64, 24, 25, 5), "theta must be <= s"),
    (lambda: dd.union_synapse_count(100, 10, -1), "m must be >= 0"),
    (lambda: dd.simulate_false_match(100, 10, 10, 5, trials=0), "trials must be"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("bad", [10.5, "10", None, True])
def test_non_integer_counts_raise_type_error(bad):
    with pytest.raises(TypeError, match="n must"):
        dd.false_match_probability(bad, 5, 5, 2)


def test_ci_preset_experiments_support_the_paper():
    cfg = dd.DendritesConfig.preset("ci")
    scaling = dd.run_scaling(cfg)
    assert scaling["slope_vs_n"][64] == pytest.approx(-cfg.theta, rel=0.05)
    opt = dd.run_optimal_threshold(cfg)
    assert opt["theta_first_below"] == 10                      # the authors' 1e-9 annotation is reached at θ = 10
    assert opt["optimum"][0.25] == 11
    with pytest.raises(ValueError, match="scale"):
        dd.DendritesConfig.preset("huge")


# ---------------------------------------------------------------------------
# the authors' printed numbers (numenta/htmresearch, projects/sdr_paper)
# ---------------------------------------------------------------------------
def test_authors_printed_value_matches_exact_rational_to_all_printed_digits():
    exact = dd.false_match_probability_exact(10_000, 300, 24, 12)
    assert exact == exact_false_match(10_000, 300, 24, 12)
    assert dd.printed_deviation(exact, "8.37584522709849e-13") <= 1.0
    assert dd.printed_deviation(exact, "8.37584522709850e-13") > 1.0     # one unit off in the 15th digit


def test_authors_optimal_threshold_medians():
    opt = dd.run_optimal_threshold(dd.DendritesConfig.preset("ci"))
    for theta, printed in ((9, "2.041e-9"), (10, "7.400e-11"), (12, "7.631e-14")):
        assert dd.printed_deviation(float(opt["median_fm"][theta - 1]), printed) <= 1.0
    assert dd.printed_deviation(float(opt["mean_fm"][2]), "0.03666") <= 1.0


def test_authors_union_lists_and_the_union_claim_at_their_n():
    f = dd.union_false_match_probability
    for (n, m), printed in {(10_000, 6): "2.69e-7", (10_000, 7): "1.98e-6", (10_000, 10): "1.27e-4",
                            (20_000, 13): "9.53e-7"}.items():
        assert dd.printed_deviation(f(n, 200, 25, m, 15), printed) <= 1.0
    res = dd.run_union(dd.DendritesConfig.preset("ci"))
    assert res["m_max"] == {1_000: 0, 10_000: 6, 20_000: 13}


def test_authors_noise_value_and_dense_curve():
    assert dd.printed_deviation(dd.false_negative_probability(128, 30, 12, 64), "0.0716985") <= 1.0
    # the effect-of-n "dense" curve is a = n/4 (0.0052 ... 0.0072), not n/2 (0.58)
    assert dd.printed_deviation(dd.false_match_probability(100_000, 25_000, 24, 12), "0.0072") <= 1.0
    assert dd.false_match_probability(100_000, 50_000, 24, 12) == pytest.approx(0.58, abs=0.005)


# ---------------------------------------------------------------------------
# printed_deviation, exact rational evaluation, union size law
# ---------------------------------------------------------------------------
def test_printed_deviation_known_values():
    assert dd.printed_deviation(0.0125, "0.012") == pytest.approx(1.0)
    assert dd.printed_deviation(2.0e-9, "2.041e-9") == pytest.approx(82.0)
    assert dd.printed_deviation(Fraction(1, 3), "0.333") == pytest.approx(2 / 3 * 1e-3 / 1e-3 * 1.0, rel=1e-12)


@pytest.mark.parametrize("value,printed,err", [(1.0, 1.0, TypeError), (1.0, "abc", ValueError),
                                               ("1", "1.0", TypeError), (float("nan"), "1.0", ValueError)])
def test_printed_deviation_bad_input(value, printed, err):
    with pytest.raises(err, match="printed|value"):
        dd.printed_deviation(value, printed)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 120), data=st.data())
def test_exact_rational_agrees_with_log_space(n, data):
    a = data.draw(st.integers(0, n))
    s = data.draw(st.integers(0, n))
    theta = data.draw(st.integers(0, s))
    ex = dd.false_match_probability_exact(n, a, s, theta)
    assert ex == exact_false_match(n, a, s, theta) or (theta == 0 and ex == 1)
    assert dd.false_match_probability(n, a, s, theta) == pytest.approx(float(ex), rel=1e-10, abs=1e-300)


def _brute_union_sizes(n, s, m):
    from itertools import combinations, product
    subsets = list(combinations(range(n), s))
    counts = np.zeros(m * s + 1)
    for combo in product(subsets, repeat=m):
        counts[len(set().union(*combo))] += 1
    return counts / counts.sum()


@pytest.mark.parametrize("n,s,m", [(6, 2, 2), (5, 2, 3), (7, 3, 2)])
def test_union_size_distribution_matches_enumeration(n, s, m):
    p = dd.union_size_distribution(n, s, m)
    brute = _brute_union_sizes(n, s, m)[: p.size]
    np.testing.assert_allclose(p, brute, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_union_size_distribution_mean_is_the_closed_form(n, data):
    s = data.draw(st.integers(0, n))
    m = data.draw(st.integers(0, 12))
    p = dd.union_size_distribution(n, s, m)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.sum(np.arange(p.size) * p) == pytest.approx(dd.union_synapse_count(n, s, m), rel=1e-9, abs=1e-9)


def test_union_exact_mixture_matches_simulation_and_differs_from_rounding():
    n, a, s, m, theta = 2000, 40, 20, 10, 8
    exact = dd.union_false_match_exact(n, a, s, m, theta)
    r = dd.simulate_union_false_match(n, a, s, m, theta, trials=1_000_000, seed=5)
    assert abs(r.estimate - exact) < 4 * r.stderr
    # the authors' rounded mean-size approximation is about 1% low here
    assert 0.002 < 1 - dd.union_false_match_probability(n, a, s, m, theta) / exact < 0.05
    assert dd.union_false_match_exact(n, a, s, 1, theta) == pytest.approx(dd.false_match_probability(n, a, s, theta))


@pytest.mark.parametrize("call,match", [
    (lambda: dd.union_size_distribution(0, 0, 1), "n must be >= 1"),
    (lambda: dd.union_size_distribution(10, 11, 1), "s must be <= n"),
    (lambda: dd.union_size_distribution(10, 3, -1), "m must be >= 0"),
    (lambda: dd.union_false_match_exact(100, 10, 5, 0, 2), "m must be"),
    (lambda: dd.false_match_probability_exact(100, 10, 5, 6), "theta must be <= s"),
    (lambda: dd.false_match_probability_exact(100, 101, 5, 2), "a must be <= n"),
])
def test_new_kernels_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------
# Monte Carlo checks: estimates with their standard errors, verdicts on the interval
# ---------------------------------------------------------------------------
def _mc_config(trials):
    return dd.DendritesConfig(mc_trials=trials, mc_false_match=((1000, 100, 24, 8),), mc_false_negative=(),
                              mc_union=())


def test_monte_carlo_checks_pass_with_the_ci_budget_and_are_inconclusive_with_a_tiny_one():
    from sparsebook.claims import ClaimSet

    big = dd.run_monte_carlo(_mc_config(4_000_000), seed=0)
    (c,) = dd.add_monte_carlo_checks(ClaimSet("dendrites"), big, rtol=0.05)
    assert c.kind == "check" and c.verdict == "passes"
    assert c.measured.kind == "monte carlo" and c.measured.se > 0
    small = dd.run_monte_carlo(_mc_config(10_000), seed=0)     # ~15 hits: relative SE ~25%
    (c,) = dd.add_monte_carlo_checks(ClaimSet("dendrites"), small, rtol=0.05)
    assert c.verdict == "inconclusive"


def test_monte_carlo_checks_fail_against_a_wrong_reference():
    from sparsebook.claims import ClaimSet

    mc = dd.run_monte_carlo(_mc_config(4_000_000), seed=0)
    kind, p, r, _ = mc["rows"][0]
    wrong = {"rows": [(kind, p, r, float(dd.false_match_probability(1000, 100, 24, 7)))]}   # θ − 1
    (c,) = dd.add_monte_carlo_checks(ClaimSet("dendrites"), wrong, rtol=0.05)
    assert c.verdict == "fails"
    with pytest.raises(ValueError, match="rtol"):
        dd.add_monte_carlo_checks(ClaimSet("dendrites"), mc, rtol=0.0)


# ---------------------------------------------------------------- explorable figure and try-your-own cell
def test_explorable_false_match_matches_the_exact_formula():
    fig = dd.explore_false_match()
    assert len(fig.frames) == 5 * 4 * 5
    (ref,) = fig.fixed
    (t,) = fig.frame(a=128, s=24, theta=12)[1:]
    assert t["y"] == ref["y"]
    i = list(dd.figures.EXPLORE_N).index(10_000)
    assert t["y"][i] == pytest.approx(float(exact_false_match(10_000, 128, 24, 12)), rel=1e-5)
    (t,) = fig.frame(a=256, s=16, theta=20)[1:]
    assert all(v is None or v == 0.0 for v in t["y"])  # θ > s: never fires; n < a: no such population
    assert t["y"][0] is None


def test_try_your_own_plot_prints_the_exact_value(capsys):
    import matplotlib.pyplot as plt

    fig = dd.plot_try_false_match(10_000, 300, 24, 12)
    assert "8.376e-13" in capsys.readouterr().out
    plt.close(fig)
    dd.plot_try_false_match(1_000, 20, 10, 12)  # θ > s: P = 0, no error
    assert "cannot fire" in capsys.readouterr().out
    with pytest.raises(ValueError, match="a <= n"):
        dd.plot_try_false_match(100, 200, 10, 5)
    assert dd.try_false_match().children


def test_table1_rows_known_values():
    r = dd.run_table1()
    assert set(r["deviation"]) == {"B", "C", "D"} and len(r["rows"]) == 11
    # B and C round to the notebook's 15 printed digits; D (a sum of ratios in floating point there)
    # agrees only to about 10 digits
    assert r["deviation"]["B"] <= 1.0 and r["deviation"]["C"] <= 1.0
    assert r["deviation"]["D"] > 1.0 and 1e-12 < r["relative"]["D"] < 1e-9
    # one row by hand: Table 1B, s = θ = 6: C(n−6, a−6)/C(n, a) = (a)_6/(n)_6
    x = r["rows"][("B", 6, 6)]["exact"]
    assert x == Fraction(comb(100_000 - 6, 2_000 - 6), comb(100_000, 2_000))
    assert float(x) == pytest.approx(6.35308872941916e-11, rel=1e-14)


# ---------------------------------------------------------------------------
# the whole noise figure: the authors' printed curves, our simulation of every point
# ---------------------------------------------------------------------------
def test_noise_overlaps_have_the_hypergeometric_law_at_every_noise_level():
    from scipy.stats import chisquare

    a, s, trials = 40, 12, 20_000
    lost = dd.simulate_noise_overlaps(a, s, trials, seed=3)
    assert lost.shape == (trials, a + 1)
    assert np.all(lost[:, 0] == 0) and np.all(lost[:, -1] == s)          # nothing / everything replaced
    assert np.all(np.diff(lost, axis=1) >= 0)                             # nested replaced sets
    for v in (5, 20, 33):
        counts = np.bincount(lost[:, v], minlength=s + 1)
        expected = hypergeom.pmf(np.arange(s + 1), a, s, v) * trials
        keep = expected > 5
        stat = chisquare(counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum())
        assert stat.pvalue > 1e-4
    np.testing.assert_array_equal(lost, dd.simulate_noise_overlaps(a, s, trials, seed=3))


def test_noise_overlaps_detect_a_wrong_segment_size():
    lost = dd.simulate_noise_overlaps(40, 12, 20_000, seed=1)
    hits = int((lost[:, 20] >= 7).sum())
    right = float(dd.false_negative_probability(40, 12, 6, 20))
    wrong = float(dd.false_negative_probability(40, 12, 5, 20))
    assert dd.binomial_two_sided_p(hits, 20_000, right) > 1e-3
    assert dd.binomial_two_sided_p(hits, 20_000, wrong) < 1e-6


def test_binomial_two_sided_p_matches_scipy_binomtest():
    from scipy.stats import binomtest

    for k, n, p in ((3, 20, 0.1), (0, 50, 0.02), (17, 100, 0.3), (99, 100, 0.97), (5, 10, 0.5)):
        assert dd.binomial_two_sided_p(k, n, p) == pytest.approx(min(1.0, 2 * min(
            binomtest(k, n, p, alternative="less").pvalue, binomtest(k, n, p, alternative="greater").pvalue)), rel=1e-9)
    assert dd.binomial_two_sided_p(0, 10, 0.0) == 1.0 and dd.binomial_two_sided_p(1, 10, 0.0) == 0.0
    assert dd.binomial_two_sided_p(10, 10, 1.0) == 1.0 and dd.binomial_two_sided_p(9, 10, 1.0) == 0.0
    with pytest.raises(ValueError, match="hits"):
        dd.binomial_two_sided_p(11, 10, 0.5)
    with pytest.raises(ValueError, match="p must"):
        dd.binomial_two_sided_p(1, 10, 1.5)


@pytest.mark.parametrize("call,match", [
    (lambda: dd.simulate_noise_overlaps(10, 11, 5), "s must be"),
    (lambda: dd.simulate_noise_overlaps(10, 3, 0), "trials must be"),
    (lambda: dd.simulate_noise_overlaps(0, 0, 5), "a must be"),
])
def test_noise_overlaps_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_authors_noise_figure_known_values():
    from sparsebook.dendrites.experiments import _printed_count_range

    cfg = dd.DendritesConfig()
    res = dd.run_noise(cfg)
    assert list(res["authors_noise_v"][[0, 9, 15]]) == [6, 64, 102]
    dev = res["authors_curve_deviations"]
    # θ = 12, 50% noise: the printed 0.0716985160403564 agrees with the exact rate to every digit
    assert dev[12][9] <= 1
    # θ = 8, v = 26: the script prints 3.11341516283240e-16; the exact rate is 3.1419e-16 (0.9% apart)
    assert res["authors_noise_exact"][8][3] == pytest.approx(float(exact_false_negative(128, 30, 8, 26)), rel=1e-12)
    assert res["authors_curve_relative"][8][3] == pytest.approx(0.00908, abs=1e-4)
    assert res["authors_curve_deviation"] > 1
    assert 0 < res["authors_sim_relative"] < 0.05 and res["authors_sim_points"] == 26
    assert _printed_count_range("1.70E-07", 100_000_000) == (17, 17)
    assert _printed_count_range("0.0716827", 100_000_000) == (7168265, 7168275)
    assert _printed_count_range("0", 100) == (0, 0)


def test_noise_simulation_of_the_whole_curve_passes_and_rejects_a_wrong_curve():
    cfg = dd.DendritesConfig(noise_mc_trials=20_000)
    sim = dd.experiments.run_noise_monte_carlo(cfg, seed=0)
    assert sim["points"] == 16 * len(cfg.theta_noise_values) and sim["hits"].shape == (4, 16)
    assert sim["bonferroni"] >= cfg.noise_alpha
    wrong = dd.binomial_two_sided_p(sim["hits"], sim["trials"], np.roll(sim["exact"], 1, axis=0))
    assert wrong.size * wrong.min() < cfg.noise_alpha


# ---------------------------------------------------------------------------
# Sparsey: coding field kernels, union property of a coding unit, runners
# ---------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_sparsey_drive_equals_the_dense_product(seed):
    rng = np.random.default_rng(seed)
    w = (rng.random((2, 30, 24)) < 0.3).astype(np.uint8)
    items = np.sort(np.argsort(rng.random((2, 5, 30)), axis=-1)[..., :6], axis=-1)
    x = np.zeros((2, 5, 30))
    np.put_along_axis(x, items, 1.0, axis=-1)
    np.testing.assert_array_equal(dd.sparsey_drive(w, items), np.einsum("sbm,smf->sbf", x, w).astype(int))


def test_sparsey_win_probabilities_hand_values():
    v = np.zeros(8)
    v[[0, 5]] = 1.0                                    # Q = 2 CMs of K = 4: unit 0 and unit 1 (of CM 2) fully driven
    rho = dd.sparsey_win_probabilities(v, 2, chi=1000, lam=28, phi=0.5, g_min=0.2)
    assert rho.shape == (2, 4) and np.allclose(rho.sum(-1), 1)
    hi = 1 + 1000 / (1 + np.exp(-28 * 0.5))            # G = 1 → η = 1
    lo = 1 + 1000 / (1 + np.exp(28 * 0.5))
    assert rho[0, 0] == pytest.approx(hi / (hi + 3 * lo)) and rho[1, 1] == pytest.approx(hi / (hi + 3 * lo))
    novel = dd.sparsey_win_probabilities(np.full(8, 0.1), 2, g_min=0.2)   # G ≤ g_min: uniform
    np.testing.assert_allclose(novel, 0.25)
    assert dd.sparsey_familiarity(v, 2) == 1.0 and dd.sparsey_familiarity(np.full(8, 0.1), 4) == pytest.approx(0.1)


def test_sparsey_choose_store_retrieve_roundtrip_and_fixed_cost():
    rng = np.random.default_rng(0)
    rho = np.zeros((1, 3, 4))
    rho[0, [0, 1, 2], [2, 0, 3]] = 1.0
    np.testing.assert_array_equal(dd.sparsey_choose(rho, rng.random((1, 3))), [[2, 0, 3]])
    w = np.zeros((1, 20, 12), np.uint8)
    items = np.array([[[1, 4, 7, 9]]])
    dd.sparsey_store(w, items, np.array([[[2, 0, 3]]]))
    assert w.sum() == 4 * 3 and np.all(w[0][[1, 4, 7, 9]][:, [2, 4, 11]] == 1)
    got, ops = dd.sparsey_retrieve(w, items, 3, rng)
    np.testing.assert_array_equal(got, [[[2, 0, 3]]])
    assert ops == 4 * 12 + 12
    more = dd.sparsey_learn(w, np.array([[[0, 2, 3, 5], [6, 8, 10, 11]]]), 3, rng)
    assert more.shape == (1, 2, 3)
    assert dd.sparsey_retrieve(w, items, 3, rng)[1] == ops            # independent of the items stored


def test_code_overlap_and_nearest_code_with_ties():
    assert int(dd.code_overlap([1, 2, 3], [1, 0, 3])) == 2
    stored = np.array([[[0, 0, 0], [1, 1, 1], [0, 0, 1]]])
    retrieved = np.array([[[0, 0, 0], [0, 0, 1], [1, 1, 0]]])
    # (1, 1, 0) for item 1: overlap 2 with its own code, 1 with each of the others
    assert dd.nearest_code_correct(retrieved, stored, np.array([[0, 2, 1]])).tolist() == [[True, True, True]]
    tie = np.array([[[0, 0, 2]]])                      # overlap 2 with item 0 and with item 2
    assert dd.nearest_code_correct(tie, stored, np.array([[0]])).tolist() == [[False]]


@pytest.mark.parametrize("n,s,k", [(12, 3, 4), (30, 5, 6), (8, 8, 2)])
def test_union_size_laws_equal_the_markov_chain(n, s, k):
    laws = dd.union_size_laws(n, s, k)
    assert laws.shape == (k + 1, n + 1) and np.allclose(laws.sum(axis=1), 1)
    for j in range(1, k + 1):
        ref = dd.union_size_distribution(n, s, j)
        np.testing.assert_allclose(laws[j, :ref.size], ref, atol=1e-14)


def test_superposed_false_match_is_the_union_property():
    p = dd.superposed_false_match(256, 16, 16, 12, 10)
    assert p[0] == 0.0 and np.all(np.diff(p) > 0)
    for k in (1, 4, 10):
        assert p[k] == pytest.approx(dd.union_false_match_exact(256, 16, 16, k, 12), rel=1e-10)
    assert p[1] == pytest.approx(float(exact_false_match(256, 16, 16, 12)), rel=1e-10)


@pytest.mark.parametrize("call,match,err", [
    (lambda: dd.sparsey_drive(np.zeros((1, 4, 6)), np.array([[[0, 4]]])), "items must index", ValueError),
    (lambda: dd.sparsey_drive(np.zeros((1, 4, 6)), np.array([[[0.0, 1.0]]])), "integer index array", TypeError),
    (lambda: dd.sparsey_win_probabilities(np.zeros(6), 4), "q must divide", ValueError),
    (lambda: dd.sparsey_win_probabilities(np.full(6, 2.0), 3), "v must lie", ValueError),
    (lambda: dd.sparsey_win_probabilities(np.zeros(6), 3, g_min=1.0), "g_min", ValueError),
    (lambda: dd.sparsey_store(np.zeros((1, 4, 6), np.uint8), np.array([[[0]]]), np.array([[[0, 3]]])),
     "codes must hold", ValueError),
    (lambda: dd.sparsey_choose(np.ones((2, 3)) / 3, np.zeros(3)), "uniform must have shape", ValueError),
    (lambda: dd.code_overlap([1, 2], [1, 2, 3]), "same number of CMs", ValueError),
    (lambda: dd.union_size_laws(10, 11, 2), "s must be", ValueError),
])
def test_sparsey_bad_input(call, match, err):
    with pytest.raises(err, match=match):
        call()


def _tiny_sparsey(**kw):
    return dd.SparseyConfig(seeds=(0, 1), input_bits=64, active_bits=8, field=64, q_values=(16, 4, 1), noise_bits=2,
                            n_checkpoints=(8, 16, 32, 64), probes=20, growth_q=(16, 4), point_q=(4, 1),
                            sim_q=8, sim_prototypes=6, sim_swaps=(2, 4, 8), **kw)


def test_sparsey_runners_tiny_and_deterministic():
    cfg = _tiny_sparsey()
    a, b = dd.run_sparsey_capacity(cfg, seed=0), dd.run_sparsey_capacity(cfg, seed=0)
    np.testing.assert_array_equal(a["accuracy"], b["accuracy"])
    assert a["accuracy"].shape == (3, 2, 4) and a["capacity"].shape == (3, 2)
    assert np.all(a["ops"][a["ops"] >= 0] == 8 * 64 + 64) and np.all(a["ops"][:, 0] >= 0)
    ctrl = dd.run_sparsey_capacity(_tiny_sparsey(control_q=(4,)), seed=0, random_codes=True)
    assert ctrl["accuracy"].shape == (1, 2, 4) and list(ctrl["q"]) == [4]
    assert np.nanmax(a["accuracy"]) <= 1 and np.all(a["capacity"] >= 8)
    ok = ~np.isnan(a["fm"])
    assert np.all(a["fm"][ok] >= 0) and np.all(a["fm_pred"][ok] <= 1)
    s = dd.run_sparsey_similarity(cfg, seed=0)
    assert len(s["rho"]) == 2 and s["code_overlap"].shape == (2, 3)
    assert s["code_overlap"][:, 0].mean() > s["code_overlap_random"][:, 0].mean()   # 2 of 8 bits swapped


def test_sparsey_capacity_interpolation_known_values():
    from sparsebook.dendrites.experiments import _capacity

    ns = np.array([32, 64, 128])
    assert _capacity(ns, np.array([1.0, 0.9, 0.5]), 0.95) == pytest.approx(2 ** 5.5)
    assert _capacity(ns, np.array([1.0, 1.0, 1.0]), 0.95) == 128
    assert _capacity(ns, np.array([0.5, 0.2, 0.0]), 0.95) == 32
    assert _capacity(ns, np.array([1.0, 0.4, np.nan]), 0.95) == pytest.approx(2 ** (5 + 0.05 / 0.6))


def test_sparsey_full_preset_constructs():
    full = dd.SparseyConfig.preset("full")
    assert full.scale == "full" and len(full.seeds) == 10 and full.probes == 400
    assert dd.SparseyConfig.preset("ci").seeds == (0, 1, 2, 3, 4)
    assert dd.DendritesConfig.preset("full").noise_mc_trials == 2_000_000   # 20 chunks of 100,000 orders
    with pytest.raises(ValueError):
        dd.SparseyConfig.preset("huge")


def test_scipy_hypergeom_agrees_over_the_authors_whole_grid():
    cfg = dd.DendritesConfig()
    N, SP, S, TH = np.meshgrid(cfg.grid_n, cfg.grid_sparsity, cfg.grid_s, cfg.grid_theta, indexing="ij")
    A = np.rint(N * SP).astype(np.int64)
    ours = dd.false_match_probability(N, A, S, TH)
    ref = hypergeom.sf(TH - 1, N, A, S)
    assert ours.size == 8_400
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=0)
