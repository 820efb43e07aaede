"""Explorable figures and try-your-own cells: knobs a reader turns, with and without a kernel.

Two tools, shared by every chapter:

- :class:`Explorable` (built with :func:`explore`): a figure precomputed over a grid of one to a
  few knobs when the notebook executes (the chapter's own kernels evaluate every point), drawn
  in the browser by Plotly with one slider per knob.  No kernel is needed: the sweep travels in
  the notebook output.  Its ``_repr_mimebundle_`` returns

  - ``text/html``: a ``<div>`` with the sliders, the sweep as JSON and a script that draws it with
    the global ``Plotly`` object.  The book serves ``plotly.min.js`` from its own ``_static``
    folder (:mod:`sparsebook.sphinxext`), so the page works offline; where ``Plotly`` is missing
    (JupyterLab, an HTML viewer) the figure says so instead of failing.  Element ids are a hash
    of the content, so re-executing a notebook stores the same HTML.
  - :data:`EXPLORE_MIME`: the sweep itself, which the notebook regression (``tests/nbval_jupyter.py``)
    compares numerically instead of the HTML string;
  - ``text/plain``: one line saying what the figure sweeps.

  The static matplotlib figure stays in every chapter: it is what nbval compares as an image and
  what a reader without JavaScript sees.

- :func:`interact`: a "try your own" cell: ipywidgets sliders over the same knobs calling a
  chapter function that draws a small plot live (JupyterLab).  On the static site the cell
  shows as code.

Adding an explorable figure to a chapter::

    from sparsebook.explore import explore, trace
    explore(lambda s, theta: [trace("P(false match)", n_grid, fm(n_grid, 128, s, theta))],
            {"s": [16, 24, 32], "theta": [8, 12, 16]}, title="...", xlabel="n", ylabel="P", log_y=True)

Sweep payload (JSON, version 1): ``title``, ``xlabel``, ``ylabel``, ``log_x``, ``log_y``,
``x_range``/``y_range`` (data units or null), ``digits`` (significant digits stored),
``knobs`` (list of ``{"name", "label", "values", "default"}``: ``default`` an index),
``fixed`` (traces drawn in every frame) and ``frames`` (one list of traces per combination of
knob values, in row-major order: the last knob varies fastest).  A trace is
``{"name", "x", "y"}`` plus optional ``mode``, ``dash``, ``color`` and, for a stochastic
curve, ``lo``/``hi`` (its 95% band) and ``kind`` (``"seeds"`` or ``"monte carlo"``).
Non-finite values are stored as null (a gap in the curve).
"""
from __future__ import annotations

import hashlib
import html
import itertools
import json
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: MIME type under which an :class:`Explorable` carries its sweep.
EXPLORE_MIME = "application/vnd.sparsebook.explore+json"

#: Largest number of frames a sweep may hold (a guard against notebooks of many megabytes).
MAX_FRAMES = 2000
#: Largest number of values stored in one sweep.
MAX_VALUES = 40_000

_MODES = ("lines", "markers", "lines+markers")
_DASHES = (None, "solid", "dash", "dot", "dashdot")
_KINDS = ("exact", "seeds", "monte carlo")


def _number(v, digits: int):
    """A JSON number rounded to ``digits`` significant digits, or None where not finite."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("trace values must be numbers, got a boolean")
    f = float(v)
    if not math.isfinite(f):
        return None
    if f == 0.0:
        return 0.0
    return float(f"{f:.{digits}g}")


def _numbers(xs, name: str, digits: int) -> list:
    arr = np.asarray(xs, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return [_number(v, digits) for v in arr]


def trace(name: str, x, y, *, mode: str = "lines", dash: str | None = None, color: str | None = None,
          lo=None, hi=None, kind: str = "exact") -> dict:
    """One curve of a frame: ``x`` and ``y`` of equal length (1-d); ``lo``/``hi`` a 95% band of a
    stochastic curve (then ``kind`` is ``"seeds"`` or ``"monte carlo"``).  Rounded when the figure is built."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if dash not in _DASHES:
        raise ValueError(f"dash must be one of {_DASHES}, got {dash!r}")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and y must be 1-d of equal length, got shapes {x.shape} and {y.shape}")
    t = {"name": name, "x": x, "y": y, "mode": mode}
    if dash is not None:
        t["dash"] = dash
    if color is not None:
        t["color"] = color
    if (lo is None) != (hi is None):
        raise ValueError("lo and hi come together (a band), or neither")
    if lo is not None:
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        if lo.shape != x.shape or hi.shape != x.shape:
            raise ValueError(f"lo and hi must have the shape of x {x.shape}, got {lo.shape} and {hi.shape}")
        if kind == "exact":
            raise ValueError("a curve with a band is stochastic: kind must be 'seeds' or 'monte carlo'")
        t.update(lo=lo, hi=hi)
    elif kind != "exact":
        raise ValueError(f"a {kind!r} curve needs its band (lo, hi)")
    t["kind"] = kind
    return t


def _clean_trace(t: Mapping, digits: int) -> dict:
    if not isinstance(t, Mapping) or "x" not in t or "y" not in t:
        raise TypeError("a frame is a list of traces (dicts from sparsebook.explore.trace)")
    out = {"name": str(t.get("name", "")), "mode": t.get("mode", "lines"), "kind": t.get("kind", "exact")}
    for key in ("x", "y", "lo", "hi"):
        if key in t:
            out[key] = _numbers(t[key], key, digits)
    if len(out["x"]) != len(out["y"]):
        raise ValueError(f"trace {out['name']!r}: x and y differ in length")
    for key in ("dash", "color"):
        if t.get(key) is not None:
            out[key] = t[key]
    return out


def _knob_value(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"knob values must be numbers or strings, got {type(v).__name__}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return str(v)


class Explorable:
    """A figure precomputed over a grid of knob values, explored with sliders in the browser.

    Build it with :func:`explore` (which evaluates a function at every grid point) or directly
    from ``frames``: one list of traces per combination of knob values, row-major (the last
    knob varies fastest).  ``fixed`` traces are drawn in every frame (a reference curve, stored
    once).  ``digits`` significant digits are stored (the regression compares to one unit in the
    last stored digit, and never looser than 1e-9 relative: 10 digits by default).
    """

    def __init__(self, title: str, knobs: Mapping[str, Sequence], frames: Sequence[Sequence[Mapping]], *,
                 xlabel: str = "", ylabel: str = "", log_x: bool = False, log_y: bool = False,
                 x_range: Sequence[float] | None = None, y_range: Sequence[float] | None = None,
                 labels: Mapping[str, str] | None = None, default: Mapping[str, Any] | None = None,
                 fixed: Sequence[Mapping] = (), digits: int = 10, height: int = 400):
        if not isinstance(title, str) or not title:
            raise ValueError("title must be a non-empty string")
        if not isinstance(knobs, Mapping) or not knobs:
            raise ValueError("knobs must be a non-empty mapping name -> list of values")
        if not isinstance(digits, int) or not 3 <= digits <= 17:
            raise ValueError(f"digits must be an integer in [3, 17], got {digits!r}")
        labels, default = dict(labels or {}), dict(default or {})
        unknown = (set(labels) | set(default)) - set(knobs)
        if unknown:
            raise ValueError(f"labels/default name knobs that do not exist: {sorted(unknown)}")
        self.knobs = []
        for name, values in knobs.items():
            values = [_knob_value(v) for v in values]
            if not values:
                raise ValueError(f"knob {name!r} has no values")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"knob {name!r} repeats a value: {values}")
            if name in default:
                d = _knob_value(default[name])
                if d not in values:
                    raise ValueError(f"default {name} = {d!r} is not among its values {values}")
                index = values.index(d)
            else:
                index = 0
            self.knobs.append({"name": name, "label": labels.get(name, name), "values": values, "default": index})
        n_frames = math.prod(len(k["values"]) for k in self.knobs)
        if n_frames > MAX_FRAMES:
            raise ValueError(f"{n_frames} frames: at most {MAX_FRAMES} (coarsen a knob)")
        if len(frames) != n_frames:
            raise ValueError(f"{len(frames)} frames for {n_frames} knob combinations")
        self.frames = [[_clean_trace(t, digits) for t in frame] for frame in frames]
        self.fixed = [_clean_trace(t, digits) for t in fixed]
        n_values = sum(len(t[k]) for fr in self.frames + [self.fixed] for t in fr for k in ("x", "y", "lo", "hi") if k in t)
        if n_values > MAX_VALUES:
            raise ValueError(f"{n_values} stored values: at most {MAX_VALUES} (coarsen a knob or the x grid)")
        for rng, nm in ((x_range, "x_range"), (y_range, "y_range")):
            if rng is not None and (len(rng) != 2 or not all(math.isfinite(float(v)) for v in rng)):
                raise ValueError(f"{nm} must be two finite numbers, got {rng!r}")
            if rng is not None and (nm == "x_range" and log_x or nm == "y_range" and log_y) and min(rng) <= 0:
                raise ValueError(f"{nm} of a log axis must be positive, got {rng!r}")
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.log_x, self.log_y, self.digits, self.height = bool(log_x), bool(log_y), digits, int(height)
        self.x_range = None if x_range is None else [float(v) for v in x_range]
        self.y_range = None if y_range is None else [float(v) for v in y_range]

    @classmethod
    def from_payload(cls, payload: Mapping) -> "Explorable":
        """The figure back from its stored sweep (:meth:`payload`), e.g. to re-render a stored
        notebook output with a newer script: ``from_payload(p).payload() == p``."""
        if payload.get("version") != 1:
            raise ValueError(f"unknown sweep version {payload.get('version')!r}")
        knobs = {k["name"]: k["values"] for k in payload["knobs"]}
        return cls(payload["title"], knobs, payload["frames"], xlabel=payload["xlabel"], ylabel=payload["ylabel"],
                   log_x=payload["log_x"], log_y=payload["log_y"], x_range=payload["x_range"],
                   y_range=payload["y_range"], labels={k["name"]: k["label"] for k in payload["knobs"]},
                   default={k["name"]: k["values"][k["default"]] for k in payload["knobs"]},
                   fixed=payload["fixed"], digits=payload["digits"], height=payload.get("height", 400))

    # ----------------------------------------------------------------- data
    def payload(self) -> dict:
        """The sweep as JSON-ready data (what :data:`EXPLORE_MIME` carries)."""
        return {"version": 1, "title": self.title, "xlabel": self.xlabel, "ylabel": self.ylabel,
                "log_x": self.log_x, "log_y": self.log_y, "x_range": self.x_range, "y_range": self.y_range,
                "digits": self.digits, "height": self.height, "knobs": self.knobs, "fixed": self.fixed,
                "frames": self.frames}

    def frame(self, **values) -> list[dict]:
        """The traces drawn at the given knob values (defaults for those not given)."""
        unknown = set(values) - {k["name"] for k in self.knobs}
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}")
        i = 0
        for k in self.knobs:
            idx = k["values"].index(_knob_value(values[k["name"]])) if k["name"] in values else k["default"]
            i = i * len(k["values"]) + idx
        return self.fixed + self.frames[i]

    @property
    def element_id(self) -> str:
        """A deterministic id: a hash of the sweep (identical on re-execution)."""
        blob = json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))
        return "sbx-" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    # ----------------------------------------------------------------- display
    def text(self) -> str:
        knobs = ", ".join(f"{k['name']} ({len(k['values'])} values)" for k in self.knobs)
        return (f"Explorable figure '{self.title}': {len(self.frames)} precomputed settings of {knobs}; "
                "interactive where plotly.js is loaded (the built book)")

    def __repr__(self) -> str:
        return self.text()

    def _html(self) -> str:
        eid = self.element_id
        data = json.dumps(self.payload(), sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
        controls = []
        for j, k in enumerate(self.knobs):
            value = _fmt(k["values"][k["default"]])
            controls.append(
                f'<label class="sbx-knob">{html.escape(k["label"])} '
                f'<input type="range" min="0" max="{len(k["values"]) - 1}" step="1" value="{k["default"]}" '
                f'data-knob="{j}" aria-label="{html.escape(k["label"])}"> '
                f'<output>{html.escape(value)}</output></label>')
        return (
            f'<div class="sparsebook-explore" id="{eid}">'
            f'<div class="sbx-controls" style="display:none;flex-wrap:wrap;gap:0.3em 1.5em;font-size:0.9em">'
            + "".join(controls) + "</div>"
            f'<div class="sbx-plot" style="display:none;width:100%;height:{self.height}px"></div>'
            f'<p class="sbx-msg" style="font-size:0.9em;color:#555">{html.escape(NO_SCRIPT)}</p>'
            f'<script type="application/json" class="sbx-data">{data}</script>'
            f"<script>{_JS.replace('__ID__', eid)}</script></div>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "text/html": self._html(), EXPLORE_MIME: self.payload()}


def explore(fn: Callable[..., Sequence[Mapping]], knobs: Mapping[str, Sequence], **kwargs) -> Explorable:
    """Evaluate ``fn(**knob_values)`` (a list of :func:`trace`) at every combination of ``knobs``
    (an ordered mapping name -> values) and return the :class:`Explorable` figure; ``kwargs`` as
    for :class:`Explorable` (``title``, ``xlabel``, ``ylabel``, ``log_y``, ``default``, ...)."""
    if not callable(fn):
        raise TypeError("fn must be callable")
    if not isinstance(knobs, Mapping) or not knobs:
        raise ValueError("knobs must be a non-empty mapping name -> list of values")
    names = list(knobs)
    n_frames = math.prod(len(list(v)) for v in knobs.values())
    if n_frames > MAX_FRAMES:
        raise ValueError(f"{n_frames} frames: at most {MAX_FRAMES} (coarsen a knob)")
    frames = [list(fn(**dict(zip(names, combo)))) for combo in itertools.product(*knobs.values())]
    title = kwargs.pop("title", None) or getattr(fn, "__name__", "sweep")
    return Explorable(title, knobs, frames, **kwargs)


# ---------------------------------------------------------------------- try your own
def interact(fn: Callable, knobs: Mapping[str, Any], default: Mapping[str, Any] | None = None):
    """A try-your-own cell: ipywidgets sliders over ``knobs`` calling ``fn(**values)`` live.

    ``knobs`` maps a name to a list of values (a selection slider) or to a ready ipywidgets
    widget.  Returns the ``ipywidgets.interactive`` box (displayed when it ends a cell).
    Needs a running kernel; on the static site the cell shows as code.
    """
    import ipywidgets as widgets

    default = dict(default or {})
    controls = {}
    for name, spec in knobs.items():
        if isinstance(spec, widgets.Widget):
            controls[name] = spec
            continue
        values = [_knob_value(v) for v in spec]
        if not values:
            raise ValueError(f"knob {name!r} has no values")
        value = _knob_value(default.get(name, values[0]))
        if value not in values:
            raise ValueError(f"default {name} = {value!r} is not among its values")
        controls[name] = widgets.SelectionSlider(options=[(_fmt(v), v) for v in values], value=value,
                                                 description=name, continuous_update=False)
    return _try_your_own_class(widgets)(fn, **controls)


#: What a try-your-own cell shows where no kernel runs (the book's pages render text/plain for it).
TRY_NOTE = "[Sliders: run this notebook (for example with `make lab`) to use them; the website shows the code only.]"


def _try_your_own_class(widgets):
    class TryYourOwn(widgets.interactive):
        """ipywidgets.interactive whose plain-text form is a note instead of the widget's repr."""

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if bundle:
                bundle["text/plain"] = TRY_NOTE
            return bundle

    return TryYourOwn


#: Shown until the script draws the figure (where scripts do not run: no JavaScript, an untrusted notebook).
NO_SCRIPT = ("Explorable figure: it draws in the built book (JavaScript and plotly.js, served with the site). "
             "The static figure above shows one setting; the notebook's 'try your own' cell turns the same knobs.")

_JS = r"""
(function () {
  var root = document.getElementById("__ID__");
  if (!root || root.dataset.sbxReady) return;
  root.dataset.sbxReady = "1";
  var spec = JSON.parse(root.querySelector(".sbx-data").textContent);
  var plot = root.querySelector(".sbx-plot"), msg = root.querySelector(".sbx-msg");
  var idx = spec.knobs.map(function (k) { return k.default; });
  var colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  function axis(label, log, range) {
    var a = {title: {text: label}, type: log ? "log" : "linear", automargin: true, exponentformat: "power"};
    if (range) a.range = log ? range.map(function (v) { return Math.log10(v); }) : range;
    return a;
  }
  var layout = {title: {text: spec.title, font: {size: 14}}, height: spec.height,
                margin: {l: 60, r: 20, t: 40, b: 50}, colorway: colors,
                xaxis: axis(spec.xlabel, spec.log_x, spec.x_range), yaxis: axis(spec.ylabel, spec.log_y, spec.y_range),
                legend: {font: {size: 11}}, uirevision: "keep"};
  function traces() {
    var i = 0;
    for (var j = 0; j < spec.knobs.length; j++) i = i * spec.knobs[j].values.length + idx[j];
    var out = [], k = 0;
    spec.fixed.concat(spec.frames[i]).forEach(function (t) {
      var color = t.color || colors[k++ % colors.length];
      if (t.lo) out.push({type: "scatter", mode: "lines", x: t.x.concat(t.x.slice().reverse()),
                          y: t.hi.concat(t.lo.slice().reverse()), fill: "toself", fillcolor: color,
                          line: {width: 0, color: color}, opacity: 0.2, hoverinfo: "skip", showlegend: false,
                          name: t.name + " (95%)"});
      out.push({type: "scatter", mode: t.mode || "lines", name: t.name, x: t.x, y: t.y,
                line: {dash: t.dash || "solid", color: color}, marker: {size: 5, color: color}});
    });
    return out;
  }
  function draw() {
    msg.style.display = "none";
    root.querySelector(".sbx-controls").style.display = "flex";
    plot.style.display = "block";
    window.Plotly.newPlot(plot, traces(), layout, {responsive: true, displaylogo: false});
    root.querySelectorAll("input[data-knob]").forEach(function (el) {
      el.addEventListener("input", function () {
        var j = +el.dataset.knob, v = spec.knobs[j].values[+el.value];
        idx[j] = +el.value;
        el.parentNode.querySelector("output").textContent =
          typeof v === "number" ? (Math.abs(v) >= 1e4 && Number.isInteger(v) ? v.toLocaleString("en-US") : String(+v.toPrecision(6))) : v;
        window.Plotly.react(plot, traces(), layout);
      });
    });
  }
  function start() {
    if (window.Plotly) { draw(); return; }
    msg.textContent = "This explorable figure needs plotly.js, which the built book serves from its own pages " +
      "(no network). Here it is not loaded: the static figure above shows one setting, and the " +
      "'try your own' cell of this notebook turns the same knobs with a running kernel.";
  }
  if (window.Plotly || document.readyState !== "loading") start();
  else document.addEventListener("DOMContentLoaded", start);
})();
"""
