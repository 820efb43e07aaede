"""Tests of sparsebook.explore: sweeps, their MIME bundle, deterministic HTML, bad input, widgets."""
import json

import numpy as np
import pytest

from sparsebook.explore import EXPLORE_MIME, Explorable, explore, interact, trace

X = np.linspace(0.0, 1.0, 5)


def _fig(**kw):
    return explore(lambda a, b: [trace(f"a={a}", X, a * X + b)], {"a": [1, 2, 3], "b": [0.0, 0.5]},
                   title="lines", xlabel="x", ylabel="y", **kw)


def test_frames_are_row_major_and_frame_looks_up_knob_values():
    fig = _fig(default={"a": 2})
    assert len(fig.frames) == 6
    assert fig.frames[1][0]["y"] == pytest.approx(list(1 * X + 0.5))  # a=1, b=0.5: the last knob fastest
    assert fig.frame(a=3, b=0.5)[0]["y"] == pytest.approx(list(3 * X + 0.5))
    assert fig.frame()[0]["name"] == "a=2"  # defaults
    assert fig.knobs[0]["default"] == 1


def test_mimebundle_carries_the_sweep_text_and_html_with_a_deterministic_id():
    b1, b2 = _fig()._repr_mimebundle_(), _fig()._repr_mimebundle_()
    assert set(b1) == {"text/plain", "text/html", EXPLORE_MIME}
    assert b1 == b2  # identical on re-execution
    json.dumps(b1[EXPLORE_MIME], allow_nan=False)  # valid JSON, no NaN
    html = b1["text/html"]
    eid = _fig().element_id
    assert f'id="{eid}"' in html and "window.Plotly" in html and html.count('type="range"') == 2
    assert "cdn" not in html.lower()
    other = explore(lambda a, b: [trace("t", X, a * X - b)], {"a": [1, 2, 3], "b": [0.0, 0.5]}, title="lines")
    assert other.element_id != eid
    assert "lines" in b1["text/plain"] and "6 precomputed" in b1["text/plain"]


def test_values_are_rounded_and_non_finite_values_stored_as_null():
    fig = explore(lambda k: [trace("t", [1, 2, 3], [1 / 3, np.inf, np.nan])], {"k": [1]}, title="t", digits=4)
    assert fig.frames[0][0]["y"] == [0.3333, None, None]


def test_html_escapes_script_endings_in_labels():
    fig = explore(lambda k: [trace("</script><b>", X, X)], {"k": [1]}, title="t")
    assert "</script><b>" not in fig._repr_mimebundle_()["text/html"]


def test_stochastic_traces_need_their_band():
    t = trace("m", X, X, lo=X - 0.1, hi=X + 0.1, kind="seeds")
    assert t["kind"] == "seeds"
    with pytest.raises(ValueError, match="band"):
        trace("m", X, X, kind="seeds")
    with pytest.raises(ValueError, match="stochastic"):
        trace("m", X, X, lo=X, hi=X)


@pytest.mark.parametrize("kwargs,match", [
    (dict(knobs={}), "knobs"),
    (dict(knobs={"a": []}), "no values"),
    (dict(knobs={"a": [1, 1]}), "repeats"),
    (dict(knobs={"a": [1]}, default={"a": 5}), "default"),
    (dict(knobs={"a": [1]}, labels={"z": "zz"}), "do not exist"),
    (dict(knobs={"a": [1, 2]}), "frames"),
    (dict(knobs={"a": [1]}, digits=2), "digits"),
    (dict(knobs={"a": [1]}, log_y=True, y_range=[0, 1]), "positive"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    knobs = kwargs.pop("knobs")
    with pytest.raises(ValueError, match=match):
        Explorable("t", knobs, [[trace("t", X, X)]], **kwargs)


def test_trace_validates_shapes_and_styles():
    with pytest.raises(ValueError, match="equal length"):
        trace("t", X, X[:3])
    with pytest.raises(ValueError, match="mode"):
        trace("t", X, X, mode="bars")
    with pytest.raises(TypeError):
        explore(lambda k: [trace("t", X, X)], {"k": [object()]}, title="t")


def test_size_guard():
    with pytest.raises(ValueError, match="at most"):
        explore(lambda k: [trace("t", X, X)], {"k": list(range(3000))}, title="t")


def test_interact_builds_selection_sliders_and_calls_the_function():
    ipywidgets = pytest.importorskip("ipywidgets")
    seen = []
    w = interact(lambda n, mode: seen.append((n, mode)), {"n": [10, 100], "mode": ["a", "b"]}, default={"n": 100})
    assert isinstance(w, ipywidgets.interactive)
    sliders = [c for c in w.children if isinstance(c, ipywidgets.SelectionSlider)]
    assert [s.description for s in sliders] == ["n", "mode"] and sliders[0].value == 100
    w.update()
    assert seen[-1] == (100, "a")
    from sparsebook.explore import TRY_NOTE

    bundle = w._repr_mimebundle_()
    assert bundle["text/plain"] == TRY_NOTE and "application/vnd.jupyter.widget-view+json" in bundle
    with pytest.raises(ValueError, match="default"):
        interact(lambda n: None, {"n": [1, 2]}, default={"n": 3})


def test_from_payload_round_trips():
    fig = _fig(default={"a": 3})
    again = Explorable.from_payload(json.loads(json.dumps(fig.payload())))
    assert again.payload() == fig.payload() and again._repr_mimebundle_() == fig._repr_mimebundle_()
    band = explore(lambda k: [trace("m", X, k * X, lo=k * X - 1, hi=k * X + 1, kind="seeds")], {"k": [1.0]}, title="b")
    assert Explorable.from_payload(band.payload()).payload() == band.payload()
