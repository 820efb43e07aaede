"""Tests of the notebook-regression plugin: measurements compared within their uncertainty, verdicts exactly."""
import pytest

from sparsebook.claims import AtLeast, ClaimSet
from sparsebook.stats import ESTIMATE_MIME, Results, exact, from_seeds
from tests.nbval_jupyter import compare_claims, compare_payloads


def _payload(values, threshold=0.5):
    cs = ClaimSet("demo")
    cs.add("c", paper="p", statement="s", quantity="q", paper_value="v",
           measured=from_seeds(values), criterion=AtLeast(threshold))
    return cs._repr_mimebundle_()["application/vnd.sparsebook.claims+json"]


def test_same_verdict_and_overlapping_intervals_pass():
    errors, notes = compare_claims(_payload([0.60, 0.62, 0.61, 0.63, 0.60]), _payload([0.61, 0.63, 0.62, 0.62, 0.61]))
    assert errors == [] and notes == []


def test_measurement_outside_its_uncertainty_fails():
    errors, _ = compare_claims(_payload([0.60, 0.62, 0.61, 0.63, 0.60]), _payload([0.80, 0.82, 0.81, 0.83, 0.80]))
    assert any("overlap" in e for e in errors)


def test_verdict_may_move_only_when_the_stored_interval_sits_on_the_threshold():
    # stored: reproduced with lo just above 0.5; new: straddles 0.5 -> inconclusive, intervals overlap
    stored = _payload([0.52, 0.54, 0.53, 0.55, 0.52])
    new = _payload([0.50, 0.54, 0.52, 0.55, 0.49])
    assert stored["claims"][0]["verdict"] == "reproduced" and new["claims"][0]["verdict"] == "inconclusive"
    errors, notes = compare_claims(stored, new)
    assert errors == [] and len(notes) == 1 and "demo/c" in notes[0]


def test_verdict_change_far_from_the_threshold_fails_even_if_intervals_overlap():
    stored = _payload([0.9, 0.91, 0.92, 0.9, 0.91], threshold=0.5)
    new = _payload([0.9, 0.91, 0.92, 0.9, 0.91], threshold=0.95)  # criterion changed too
    errors, _ = compare_claims(stored, new)
    assert any("criterion" in e for e in errors) and any("verdict" in e for e in errors)


def test_estimate_tables_compare_exact_entries_exactly_and_seeds_within_uncertainty():
    a = Results({"acc": from_seeds([0.7, 0.72, 0.71, 0.69, 0.7]), "rows": 450, "p": exact(0.25)})._repr_mimebundle_()
    b = Results({"acc": from_seeds([0.71, 0.72, 0.7, 0.7, 0.71]), "rows": 450, "p": exact(0.25)})._repr_mimebundle_()
    c = Results({"acc": from_seeds([0.71, 0.72, 0.7, 0.7, 0.71]), "rows": 451, "p": exact(0.25)})._repr_mimebundle_()
    assert compare_payloads(ESTIMATE_MIME, a[ESTIMATE_MIME], b[ESTIMATE_MIME]) == ([], [])
    errors, _ = compare_payloads(ESTIMATE_MIME, a[ESTIMATE_MIME], c[ESTIMATE_MIME])
    assert errors == ["rows: 450 -> 451"]


@pytest.mark.parametrize("stored,new", [(exact(0.1), exact(0.10001)), (exact(3.0), from_seeds([3.0, 3.1]))])
def test_exact_values_change_only_in_rounding(stored, new):
    a = Results({"x": stored})._repr_mimebundle_()[ESTIMATE_MIME]
    b = Results({"x": new})._repr_mimebundle_()[ESTIMATE_MIME]
    assert compare_payloads(ESTIMATE_MIME, a, b)[0]


def test_order_of_names_does_not_matter_because_notebooks_store_sorted_json():
    a = Results({"b": exact(1.0), "a": exact(2.0)})._repr_mimebundle_()[ESTIMATE_MIME]
    b = {"title": "", "estimates": dict(sorted(a["estimates"].items()))}
    assert compare_payloads(ESTIMATE_MIME, b, a) == ([], [])


# ---------------------------------------------------------------- explorable figures
def _sweep(scale=1.0, digits=10, band=None):
    import numpy as np

    from sparsebook.explore import explore, trace

    x = np.linspace(1.0, 2.0, 4)

    def fn(k):
        if band is None:
            return [trace("y", x, scale * k * x)]
        return [trace("y", x, scale * k * x, lo=scale * k * x - band, hi=scale * k * x + band, kind="seeds")]

    return explore(fn, {"k": [1, 2]}, title="t", digits=digits)._repr_mimebundle_()


def test_explorable_sweeps_compare_exact_values_to_1e_9():
    from sparsebook.explore import EXPLORE_MIME

    a, b, c = _sweep(), _sweep(1 + 1e-12), _sweep(1 + 1e-6)
    assert compare_payloads(EXPLORE_MIME, a[EXPLORE_MIME], b[EXPLORE_MIME]) == ([], [])
    errors, _ = compare_payloads(EXPLORE_MIME, a[EXPLORE_MIME], c[EXPLORE_MIME])
    assert errors and "frame k=1 'y'" in errors[0]


def test_explorable_sweeps_with_few_digits_compare_to_their_rounding():
    from sparsebook.explore import EXPLORE_MIME

    a, b = _sweep(digits=4), _sweep(1.0004, digits=4)
    assert compare_payloads(EXPLORE_MIME, a[EXPLORE_MIME], b[EXPLORE_MIME]) == ([], [])
    errors, _ = compare_payloads(EXPLORE_MIME, a[EXPLORE_MIME], _sweep(1.01, digits=4)[EXPLORE_MIME])
    assert errors


def test_explorable_stochastic_curves_compare_by_overlapping_bands():
    from sparsebook.explore import EXPLORE_MIME

    a, b, c = _sweep(band=0.1), _sweep(1.05, band=0.1), _sweep(1.5, band=0.1)
    assert compare_payloads(EXPLORE_MIME, a[EXPLORE_MIME], b[EXPLORE_MIME]) == ([], [])
    assert compare_payloads(EXPLORE_MIME, a[EXPLORE_MIME], c[EXPLORE_MIME])[0]


def test_explorable_knobs_and_titles_compare_exactly():
    from sparsebook.explore import EXPLORE_MIME

    a = _sweep()[EXPLORE_MIME]
    b = dict(a, knobs=[dict(a["knobs"][0], values=[1, 3])])
    errors, _ = compare_payloads(EXPLORE_MIME, a, b)
    assert errors and errors[0].startswith("knobs")


def test_plugin_strips_the_html_of_explorable_outputs_and_keeps_the_png():
    from sparsebook.explore import EXPLORE_MIME
    from tests.nbval_jupyter import _records

    bundle = _sweep()
    outs = [{"output_type": "display_data", "data": bundle, "metadata": {}},
            {"output_type": "display_data", "data": {"image/png": "x", "text/plain": "<Figure>"}, "metadata": {}}]
    found, rest = _records(outs)
    assert [m for m, _ in found] == [EXPLORE_MIME]
    assert rest == [outs[1]]
