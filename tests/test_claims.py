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
    assert summarize(board.records()) == {"reproduced": 0, "partial": 0, "not reproduced": 1, "total": 1}
    assert "demo: 0 reproduced, 0 partial, 1 not reproduced" in repr(board)
