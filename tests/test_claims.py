"""Tests of sparsebook.claims: verdicts follow the criteria, records round-trip, the scoreboard finds them."""
import json

import nbformat
import numpy as np
import pytest

from sparsebook.claims import (CLAIMS_MIME, AtLeast, AtMost, Between, ClaimSet, IsTrue, Monotone, Within,
                               claims_from_notebook, scoreboard, summarize)


def _claim(measured, criterion, partial=None):
    cs = ClaimSet("demo")
    return cs.add("c", paper="p", statement="s", quantity="q", paper_value="v",
                  measured=measured, criterion=criterion, partial=partial)


@pytest.mark.parametrize("criterion,good,bad", [
    (AtLeast(1.0), 1.0, 0.999), (AtMost(1e-9), 1e-9, 2e-9), (Between(8, 20), 11, 21),
    (Within(-12, rtol=0.05), -11.5, -12.7), (Within(1.0, atol=0.1), 1.09, 1.11),
    (Monotone("decreasing"), [3, 2, 1], [3, 3, 1]), (Monotone("increasing", tol=0.5), [0, 1, 2], [0, 0.4, 2]),
    (IsTrue("ok"), True, False),
])
def test_verdict_is_computed_from_the_measurement(criterion, good, bad):
    assert _claim(good, criterion).verdict == "reproduced"
    assert _claim(bad, criterion).verdict == "not reproduced"


def test_partial_verdict_when_only_the_weaker_criterion_holds():
    assert _claim(0.45, AtLeast(0.5), partial=AtLeast(0.4)).verdict == "partial"
    assert _claim(0.3, AtLeast(0.5), partial=AtLeast(0.4)).verdict == "not reproduced"


@pytest.mark.parametrize("measured,criterion,exc", [
    (float("nan"), AtLeast(0), ValueError), ("high", AtLeast(0), TypeError), ([1.0], Monotone(), ValueError),
    (1, IsTrue(), TypeError),
])
def test_malformed_measurements_fail_where_they_are_made(measured, criterion, exc):
    with pytest.raises(exc):
        _claim(measured, criterion)


def test_bad_claim_definitions_are_rejected():
    with pytest.raises(ValueError):
        Between(2, 1)
    with pytest.raises(ValueError):
        Within(1.0)
    with pytest.raises(ValueError):
        Monotone("sideways")
    with pytest.raises(ValueError):
        ClaimSet("Bad Key")
    cs = ClaimSet("demo")
    cs.add("x", paper="p", statement="s", quantity="q", paper_value="v", measured=1, criterion=AtLeast(0))
    with pytest.raises(ValueError, match="already"):
        cs.add("x", paper="p", statement="s", quantity="q", paper_value="v", measured=1, criterion=AtLeast(0))
    with pytest.raises(TypeError):
        cs.add("y", paper="p", statement="s", quantity="q", paper_value="v", measured=1, criterion="≥ 0")


def test_records_json_and_display_bundle(tmp_path):
    cs = ClaimSet("demo")
    cs.add("a", paper="p", statement="s", quantity="q", paper_value="v", measured=np.float64(0.123456), criterion=AtLeast(0))
    cs.add("b", paper="p", statement="s", quantity="q", paper_value="v", measured=[1, 2], criterion=Monotone("decreasing"))
    data = json.loads(cs.to_json())
    assert [r["verdict"] for r in data["claims"]] == ["reproduced", "not reproduced"]
    assert data["claims"][0]["measured_text"] == "0.123"
    bundle = cs._repr_mimebundle_()
    assert bundle[CLAIMS_MIME]["claims"][1]["id"] == "demo/b"
    assert "not reproduced" in bundle["text/html"] and "not reproduced" in bundle["text/plain"]
    assert json.loads(cs.save(tmp_path / "c.json").read_text()) == data


def test_scoreboard_collects_claims_from_stored_notebook_outputs(tmp_path):
    cs = ClaimSet("demo")
    cs.add("a", paper="p", statement="s", quantity="q", paper_value="v", measured=1.0, criterion=AtMost(0.5))
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("claims")
    cell.outputs = [nbformat.v4.new_output("display_data", data={k: v for k, v in cs._repr_mimebundle_().items()})]
    nb.cells = [cell]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    recs = claims_from_notebook(path)
    assert [r["id"] for r in recs] == ["demo/a"]
    board = scoreboard([path])
    assert summarize(board.records()) == {"reproduced": 0, "partial": 0, "inconclusive": 0, "not reproduced": 1,
                                          "total": 1, "checks": 0, "checks passing": 0}
    assert "demo: 0 reproduced, 0 partial, 0 inconclusive, 1 not reproduced" in repr(board)


# ---------------------------------------------------------------------------
# verdicts on intervals
# ---------------------------------------------------------------------------
from sparsebook.claims import INCONCLUSIVE, PARTIAL, REPRODUCED, NOT_REPRODUCED, basis_counts  # noqa: E402
from sparsebook.stats import exact, from_seeds, monte_carlo, steps  # noqa: E402


@pytest.mark.parametrize("criterion,above,straddle,below", [
    (AtLeast(0.5), [0.6, 0.62, 0.61, 0.63, 0.6], [0.4, 0.6, 0.5, 0.55, 0.45], [0.3, 0.32, 0.31, 0.33, 0.3]),
    (AtMost(0.5), [0.3, 0.32, 0.31, 0.33, 0.3], [0.4, 0.6, 0.5, 0.55, 0.45], [0.6, 0.62, 0.61, 0.63, 0.6]),
    (Within(0.5, atol=0.1), [0.5, 0.52, 0.49, 0.51, 0.5], [0.55, 0.65, 0.6, 0.62, 0.58], [0.9, 0.92, 0.91, 0.93, 0.9]),
])
def test_verdict_reads_the_whole_interval(criterion, above, straddle, below):
    assert _claim(from_seeds(above), criterion).verdict == REPRODUCED
    assert _claim(from_seeds(straddle), criterion).verdict == INCONCLUSIVE
    assert _claim(from_seeds(below), criterion).verdict == NOT_REPRODUCED


def test_the_same_mean_is_reproduced_with_a_narrow_interval_and_inconclusive_with_a_wide_one():
    narrow = from_seeds([0.54, 0.55, 0.56, 0.55, 0.55])
    wide = from_seeds([0.35, 0.75, 0.55, 0.45, 0.65])
    assert narrow.value == pytest.approx(wide.value)
    assert _claim(narrow, AtLeast(0.5)).verdict == REPRODUCED
    assert _claim(wide, AtLeast(0.5)).verdict == INCONCLUSIVE


def test_monte_carlo_interval_straddling_a_threshold_is_inconclusive():
    assert _claim(monte_carlo(1.0, 0.1), AtMost(1.1)).verdict == INCONCLUSIVE
    assert _claim(monte_carlo(1.0, 0.01), AtMost(1.1)).verdict == REPRODUCED


def test_exact_values_are_never_inconclusive():
    assert _claim(exact(0.5), AtLeast(0.5)).verdict == REPRODUCED
    assert _claim(exact(0.4999999), AtLeast(0.5)).verdict == NOT_REPRODUCED


def test_partial_needs_the_weaker_criterion_to_hold_on_the_whole_interval():
    m = from_seeds([0.42, 0.43, 0.44, 0.43, 0.42])
    assert _claim(m, AtLeast(0.5), partial=AtLeast(0.4)).verdict == PARTIAL
    assert _claim(m, AtLeast(0.5), partial=AtLeast(0.43)).verdict == NOT_REPRODUCED


def test_trend_is_decided_on_every_step_of_the_sweep():
    clear = steps([[3, 2, 1], [3.1, 2.0, 1.1], [2.9, 2.1, 0.9], [3.0, 1.9, 1.0], [3.2, 2.0, 1.0]])
    assert _claim(clear, Monotone("decreasing")).verdict == REPRODUCED
    flat_step = steps([[3, 2, 2.1], [3.1, 2.0, 1.9], [2.9, 2.1, 2.2], [3.0, 1.9, 1.8], [3.2, 2.0, 2.0]])
    assert _claim(flat_step, Monotone("decreasing")).verdict == INCONCLUSIVE
    rising = steps([[1, 2, 1], [1.1, 2.0, 1.1], [0.9, 2.1, 0.9], [1.0, 1.9, 1.0], [1.2, 2.0, 1.0]])
    assert _claim(rising, Monotone("decreasing")).verdict == NOT_REPRODUCED


def test_checks_are_kept_apart_from_reproductions():
    cs = ClaimSet("demo")
    cs.add("r", paper="p", statement="s", quantity="q", paper_value="v", source="Table 1",
           measured=from_seeds([1, 2, 3, 2, 2]), criterion=AtLeast(0))
    cs.check("identity", statement="a formula equals itself", quantity="difference",
             measured=exact(0.0), criterion=AtMost(1e-12))
    recs = cs.records()
    assert [r["kind"] for r in recs] == ["reproduction", "check"]
    assert recs[1]["verdict"] == "passes"
    s = summarize(recs)
    assert (s["total"], s["reproduced"], s["checks"], s["checks passing"]) == (1, 1, 1, 1)
    html_table = cs._repr_mimebundle_()["text/html"]
    assert html_table.index("Reproductions") < html_table.index("Consistency checks")
    assert recs[0]["basis"] == "5 seeds" and recs[0]["measured"]["n"] == 5
    assert basis_counts(recs)["≥ 5 seeds"] == 1


def test_unit_follows_the_measured_value_and_its_interval():
    cs = ClaimSet("demo")
    a = cs.add("a", paper="p", statement="s", quantity="q", paper_value="v", measured=exact(0.25), criterion=AtMost(1),
               unit="bits")
    b = cs.add("b", paper="p", statement="s", quantity="q", paper_value="v",
               measured=from_seeds([1.0, 1.1, 0.9, 1.0, 1.05]), criterion=AtLeast(0), unit="bits")
    assert a.record()["measured_text"] == "0.25 bits"
    assert b.record()["measured_text"].endswith("bits (5 seeds)")
