"""Tests of sparsebook.stats: intervals have their stated coverage, and the regression tolerance is the interval."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from sparsebook.stats import (ESTIMATE_MIME, Estimate, Results, agree, exact, from_samples, from_seeds,
                              monte_carlo, paired_difference, proportion, single, steps)


def test_student_t_interval_matches_the_textbook_formula():
    x = np.array([0.71, 0.74, 0.69, 0.73, 0.72])
    e = from_seeds(x)
    half = sps.t.ppf(0.975, 4) * x.std(ddof=1) / math.sqrt(5)
    assert e.value == pytest.approx(x.mean())
    assert (e.lo, e.hi) == pytest.approx((x.mean() - half, x.mean() + half))
    assert e.n == 5 and e.kind == "seeds" and e.samples == tuple(x)


def test_t_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        e = from_seeds(rng.normal(1.0, 2.0, 5))
        covered += e.lo <= 1.0 <= e.hi
    assert 0.935 <= covered / 2000 <= 0.965


def test_bootstrap_interval_is_asymmetric_for_a_skewed_sample():
    x = np.array([0.01, 0.02, 0.015, 0.03, 0.4, 0.02, 0.025, 0.018])
    e = from_seeds(x, method="bootstrap")
    assert e.lo <= e.value <= e.hi
    assert (e.hi - e.value) > (e.value - e.lo)
    assert from_seeds(x, method="bootstrap") == e  # seeded resampling: same interval every time


def test_paired_difference_removes_what_the_seeds_share():
    base = np.array([0.5, 0.7, 0.6, 0.9, 0.4])
    d = paired_difference(base + 0.01, base)
    assert d.value == pytest.approx(0.01) and d.lo == pytest.approx(0.01) and d.hi == pytest.approx(0.01)
    unpaired_width = from_seeds(base + 0.01).hi - from_seeds(base + 0.01).lo
    assert unpaired_width > 0.1


def test_wilson_interval_known_values():
    e = proportion(2, 450)
    assert e.value == pytest.approx(2 / 450)
    # Wilson 95% for 2/450, by hand: centre (2 + z²/2)/(450 + z²) = 0.008639, half-width 0.0074195
    assert e.lo == pytest.approx(0.0012195, rel=1e-3) and e.hi == pytest.approx(0.016059, rel=1e-3)
    assert proportion(0, 10).lo == 0.0 and proportion(10, 10).hi == 1.0


def test_monte_carlo_interval_is_mean_plus_minus_1_96_se():
    e = monte_carlo(2.0, 0.1, 100)
    assert (e.lo, e.hi) == pytest.approx((2.0 - 0.196, 2.0 + 0.196), rel=1e-3)
    s = from_samples([1.0, 2.0, 3.0])
    assert s.value == 2.0 and s.se == pytest.approx(1 / math.sqrt(3))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12))
def test_every_interval_contains_its_point_estimate(values):
    e = from_seeds(values)
    assert e.lo <= e.value <= e.hi
    assert agree(e.record(), e.record())[0]


def test_steps_are_paired_differences_between_neighbouring_sweep_points():
    v = np.array([[3.0, 2.0, 1.5], [3.2, 2.1, 1.4], [2.8, 1.9, 1.6], [3.1, 2.2, 1.5], [3.0, 2.0, 1.5]])
    s = steps(v)
    assert len(s) == 2
    assert s[0].value == pytest.approx(np.mean(v[:, 1] - v[:, 0]))


@pytest.mark.parametrize("bad,exc", [([1.0], ValueError), ([1.0, float("nan")], ValueError)])
def test_bad_seed_samples_are_rejected(bad, exc):
    with pytest.raises(exc):
        from_seeds(bad)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="se"):
        monte_carlo(1.0, -1.0)
    with pytest.raises(ValueError, match="successes"):
        proportion(11, 10)
    with pytest.raises(ValueError, match="method"):
        from_seeds([1, 2], method="magic")
    with pytest.raises(TypeError, match="value"):
        exact("x")
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1, 2, 3], [1, 2])


def test_regression_tolerance_is_the_overlap_of_the_two_intervals():
    a = from_seeds([0.50, 0.52, 0.49, 0.51, 0.50]).record()
    near = from_seeds([0.51, 0.53, 0.50, 0.52, 0.51]).record()
    far = from_seeds([0.60, 0.62, 0.59, 0.61, 0.60]).record()
    assert agree(a, near)[0]
    ok, why = agree(a, far)
    assert not ok and "overlap" in why
    assert not agree(exact(1.0).record(), exact(1.001).record())[0]
    assert agree(exact(1.0).record(), exact(1.0 + 1e-12).record())[0]
    assert not agree(single(0.5).record(), single(0.5001).record())[0]
    assert not agree(a, from_seeds([0.5, 0.5, 0.51]).record())[0]  # another number of seeds


def test_display_carries_the_record_beside_the_text():
    e = from_seeds([0.71, 0.74, 0.69, 0.73, 0.72])
    b = e._repr_mimebundle_()
    assert b["text/plain"] == "0.718 [0.694, 0.742] (5 seeds)"
    assert b[ESTIMATE_MIME]["estimates"]["value"]["n"] == 5
    r = Results({"accuracy": e, "rows": 450, "exact": exact(0.25)}, title="demo")
    rb = r._repr_mimebundle_()
    assert rb[ESTIMATE_MIME]["estimates"]["rows"] == 450
    assert "0.718 [0.694, 0.742]" in rb["text/html"]
    assert Estimate.from_record(e.record()).record() == e.record()


def test_printed_digits_follow_the_uncertainty():
    assert from_seeds([0.1, 0.3, 0.2, 0.25, 0.15]).text().startswith("0.2 [")
    assert from_seeds([0.1231, 0.1232, 0.1233, 0.1231, 0.1232]).text().startswith("0.12318 [")
