"""Estimates with their uncertainty: what a measured value is, and how sure we are of it.

Every number a claim rests on is one of four kinds of :class:`Estimate`:

- ``exact``: a closed form or an exact count; the interval is the point itself.
- ``monte carlo``: a mean over independent samples with its standard error ``se``;
  95% interval ``mean ± 1.96·se`` (normal approximation).
- ``seeds``: one value per training seed; the mean and a 95% interval, Student t
  (``mean ± t_{0.975, K−1}·s/√K``) or a BCa bootstrap (``scipy.stats.bootstrap``) where the
  distribution is skewed.  "A beats B" is measured on the paired per-seed differences
  (:func:`paired_difference`); a trend over a sweep on the interval of every step
  (:func:`steps`).
- ``single``: one run with no estimate of its spread (legacy single-seed results); it has no
  interval, and the tables say so.

An :class:`Estimate` displays itself in a notebook as ``mean [lo, hi] (K seeds)`` and carries its
record as JSON under :data:`ESTIMATE_MIME`; the notebook regression compares that record
numerically (:func:`agree`), never the text.  :class:`Results` displays several named
estimates as one table.

Example
-------
>>> from sparsebook.stats import from_seeds
>>> e = from_seeds([0.71, 0.74, 0.69, 0.73, 0.72])
>>> round(e.value, 3), round(e.lo, 3), round(e.hi, 3)
(0.718, 0.694, 0.742)
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats as _st

#: MIME type under which an :class:`Estimate` or :class:`Results` carries its JSON record.
ESTIMATE_MIME = "application/vnd.sparsebook.estimate+json"

KINDS = ("exact", "monte carlo", "seeds", "single")
LEVEL = 0.95


def _finite(x: Any, name: str) -> float:
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number; got bool")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number; got {type(x).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    return v


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits (``'nan'``/``'inf'`` as such)."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def _digits_for(value: float, halfwidth: float) -> int:
    """Significant digits that print ``value`` down to the first significant digit of ``halfwidth``
    (at least 2, at most 6): the precision the uncertainty supports."""
    if halfwidth <= 0 or not math.isfinite(halfwidth):
        return 4
    if value == 0:
        return 2
    d = math.floor(math.log10(abs(value))) - math.floor(math.log10(halfwidth)) + 2
    return int(min(6, max(2, d)))


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% interval ``[lo, hi]``.

    Attributes
    ----------
    value : float     point estimate (the mean for ``seeds`` and ``monte carlo``)
    lo, hi : float    the interval; ``lo == value == hi`` for ``exact`` and ``single``
    kind : str        one of :data:`KINDS`
    n : int           number of seeds / samples (1 for ``exact`` and ``single``)
    se : float        standard error (0 for ``exact``; ``nan`` for ``single``)
    samples : tuple   the per-seed values (``seeds`` only)
    method : str      how the interval was made: ``t``, ``bootstrap``, ``normal``, ``wilson``, ``exact``, ``none``
    """

    value: float
    lo: float
    hi: float
    kind: str
    n: int = 1
    se: float = 0.0
    samples: tuple = field(default=(), repr=False)
    method: str = "exact"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        if not (self.lo <= self.value <= self.hi):
            raise ValueError(f"need lo <= value <= hi; got {self.lo}, {self.value}, {self.hi}")

    @property
    def halfwidth(self) -> float:
        """Largest distance from the point estimate to an end of the interval (0 if none)."""
        return max(self.value - self.lo, self.hi - self.value)

    @property
    def has_interval(self) -> bool:
        return self.kind in ("monte carlo", "seeds")

    def text(self, digits: int | None = None) -> str:
        """``0.718 [0.694, 0.742] (5 seeds)``; exact values alone; single runs marked ``(1 run)``."""
        if self.kind == "exact":
            return sig(self.value, digits or 6)
        if self.kind == "single":
            return f"{sig(self.value, digits or 3)} (1 run)"
        d = digits or _digits_for(self.value, self.halfwidth)
        unit = "seeds" if self.kind == "seeds" else "samples"
        return f"{sig(self.value, d)} [{sig(self.lo, d)}, {sig(self.hi, d)}] ({self.n} {unit})"

    def record(self) -> dict:
        """JSON-ready dict (floats to 9 significant digits)."""
        r = {"value": _round(self.value), "lo": _round(self.lo), "hi": _round(self.hi),
             "kind": self.kind, "n": int(self.n), "method": self.method}
        if self.kind in ("monte carlo", "seeds"):
            r["se"] = _round(self.se)
        if self.samples:
            r["samples"] = [_round(s) for s in self.samples]
        return r

    @classmethod
    def from_record(cls, r: Mapping) -> "Estimate":
        return cls(value=float(r["value"]), lo=float(r["lo"]), hi=float(r["hi"]), kind=r["kind"],
                   n=int(r.get("n", 1)), se=float(r.get("se", 0.0) if r["kind"] != "single" else math.nan),
                   samples=tuple(r.get("samples", ())), method=r.get("method", "exact"))

    def __str__(self):
        return self.text()

    def __repr__(self):
        return f"Estimate({self.text()})"

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), ESTIMATE_MIME: {"estimates": {"value": self.record()}}}


def _round(x: float) -> float:
    x = float(x)
    return float(f"{x:.9g}") if math.isfinite(x) else x


# ---------------------------------------------------------------------------
# constructors
# ---------------------------------------------------------------------------
def exact(value) -> Estimate:
    """A value known exactly (closed form, exact count): interval ``[value, value]``."""
    v = _finite(value, "value")
    return Estimate(v, v, v, "exact", 1, 0.0, (), "exact")


def single(value) -> Estimate:
    """One run without an estimate of its spread (no interval; verdicts on it are marked so)."""
    v = _finite(value, "value")
    return Estimate(v, v, v, "single", 1, math.nan, (), "none")


def monte_carlo(mean, se, n: int | None = None) -> Estimate:
    """A Monte Carlo mean with standard error ``se``: 95% interval ``mean ± 1.96·se``."""
    m = _finite(mean, "mean")
    s = _finite(se, "se")
    if s < 0:
        raise ValueError(f"se must be >= 0; got {s}")
    z = _st.norm.ppf(0.5 + LEVEL / 2)
    return Estimate(m, m - z * s, m + z * s, "monte carlo", int(n) if n else 0, s, (), "normal")


def from_samples(samples) -> Estimate:
    """Monte Carlo estimate of ``E[X]`` from i.i.d. draws: mean, ``se = sd/√n`` (ddof 1)."""
    x = np.asarray(samples, dtype=float).ravel()
    if x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"samples must hold at least 2 finite numbers; got {x.size}")
    return monte_carlo(x.mean(), x.std(ddof=1) / math.sqrt(x.size), x.size)


def proportion(successes: int, trials: int) -> Estimate:
    """A binomial proportion ``k/n`` with its 95% Wilson score interval (Wilson 1927).

    ``(k + z²/2)/(n + z²) ± z·√(k(n−k)/n + z²/4)/(n + z²)``; ``se = √(p(1−p)/n)``.
    """
    from sparsebook.validate import check_int

    n = check_int(trials, "trials", 1)
    k = check_int(successes, "successes", 0, n)
    z = _st.norm.ppf(0.5 + LEVEL / 2)
    p = k / n
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return Estimate(p, min(p, centre - half), max(p, centre + half), "monte carlo", n,
                    math.sqrt(p * (1 - p) / n), (), "wilson")


def from_seeds(values, method: str = "t") -> Estimate:
    """Mean over seeds with a 95% interval.

    ``method="t"``: ``mean ± t_{0.975, K−1}·s/√K`` (Student); ``"bootstrap"``: BCa bootstrap of the
    mean, 9,999 resamples from a generator seeded with 0 (``scipy.stats.bootstrap``), for skewed
    distributions.  ``values``: shape ``[K]``, K >= 2 (at least 5 for a reproduction, DESIGN.md).
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"values must hold at least 2 seeds; got {x.size}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    k = x.size
    m = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(k))
    if method == "t":
        half = float(_st.t.ppf(0.5 + LEVEL / 2, k - 1)) * se
        lo, hi = m - half, m + half
    elif method == "bootstrap":
        if se == 0:
            lo = hi = m
        else:
            res = _st.bootstrap((x,), np.mean, confidence_level=LEVEL, n_resamples=9999,
                                method="BCa", random_state=np.random.default_rng(0))
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
            lo, hi = min(lo, m), max(hi, m)
    else:
        raise ValueError(f"method must be 't' or 'bootstrap'; got {method!r}")
    return Estimate(m, lo, hi, "seeds", k, se, tuple(float(v) for v in x), method)


def paired_difference(a, b, method: str = "t") -> Estimate:
    """``A − B`` over seeds, paired: :func:`from_seeds` of ``a[k] − b[k]`` (same seed ``k``).

    The pairing removes what the two conditions share (data order, initialisation), so the
    interval is that of the difference, not of either mean.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one value per seed each, same length; got {a.size} and {b.size}")
    return from_seeds(a - b, method)


def steps(values, method: str = "t") -> list[Estimate]:
    """The steps of a sweep, per seed: ``values[:, j+1] − values[:, j]`` as :func:`paired_difference`.

    ``values``: shape ``[K seeds, J sweep points]``, J >= 2.  Returns J − 1 estimates; a trend
    ("decreasing in width") holds when every step's interval lies on its side of 0
    (:class:`sparsebook.claims.Monotone`).
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"values must have shape [seeds, points>=2]; got {v.shape}")
    return [paired_difference(v[:, j + 1], v[:, j], method) for j in range(v.shape[1] - 1)]


def as_estimate(x: Any) -> Estimate:
    """An :class:`Estimate` as it is; a plain number as :func:`single` (one run, no interval)."""
    if isinstance(x, Estimate):
        return x
    return single(x)


# ---------------------------------------------------------------------------
# display of several estimates, and the regression tolerance
# ---------------------------------------------------------------------------
class Results:
    """Named measurements shown as one table: ``Results({"dense accuracy": est, ...}, title=...)``.

    Values are :class:`Estimate` objects (compared within their uncertainty by the notebook
    regression) or exact numbers, ints and strings (compared exactly).
    """

    def __init__(self, values: Mapping[str, Any], title: str = ""):
        if not isinstance(values, Mapping) or not values:
            raise ValueError("values must be a non-empty mapping of name -> Estimate or number")
        self.values = dict(values)
        self.title = title

    def _text(self, v) -> str:
        if isinstance(v, Estimate):
            return v.text()
        if isinstance(v, (float, np.floating)):
            return sig(v, 6)
        return str(v)

    def records(self) -> dict:
        out = {}
        for k, v in self.values.items():
            if isinstance(v, Estimate):
                out[k] = v.record()
            elif isinstance(v, (bool, np.bool_)):
                out[k] = bool(v)
            elif isinstance(v, (int, np.integer)):
                out[k] = int(v)
            elif isinstance(v, (float, np.floating)):
                out[k] = _round(v)
            else:
                out[k] = str(v)
        return out

    def __repr__(self):
        w = max(len(k) for k in self.values)
        head = f"{self.title}\n" if self.title else ""
        return head + "\n".join(f"{k:<{w}}  {self._text(v)}" for k, v in self.values.items())

    def _repr_mimebundle_(self, include=None, exclude=None):
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(self._text(v))}</td></tr>"
                       for k, v in self.values.items())
        cap = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return {"text/plain": repr(self),
                "text/html": f'<table class="sparsebook-results">{cap}<tbody>{rows}</tbody></table>',
                ESTIMATE_MIME: {"title": self.title, "estimates": self.records()}}


def agree(stored: Mapping, new: Mapping, rtol_exact: float = 1e-6) -> tuple[bool, str]:
    """Whether a re-measured estimate record agrees with the stored one, and why not.

    - ``exact``: equal to ``rtol_exact`` (records hold 9 significant digits; chapters round
      exact values before they show them).
    - ``single``: equal to ``rtol_exact`` (no uncertainty is known, so none is granted).
    - ``seeds`` / ``monte carlo``: same kind and n, and the two 95% intervals overlap: the
      difference of the two means is within the sum of their half-widths (about 3.9 standard
      errors of the difference for 5 seeds): another machine's rounding acts like a new draw.
    """
    if stored.get("kind") != new.get("kind"):
        return False, f"kind changed: {stored.get('kind')} -> {new.get('kind')}"
    if int(stored.get("n", 1)) != int(new.get("n", 1)):
        return False, f"n changed: {stored.get('n')} -> {new.get('n')}"
    kind = stored["kind"]
    if kind in ("exact", "single"):
        a, b = float(stored["value"]), float(new["value"])
        ok = math.isclose(a, b, rel_tol=rtol_exact, abs_tol=1e-300)
        return ok, "" if ok else f"{kind} value changed: {a!r} -> {b!r}"
    ok = float(new["lo"]) <= float(stored["hi"]) and float(stored["lo"]) <= float(new["hi"])
    return ok, "" if ok else (f"intervals do not overlap: stored {stored['value']} [{stored['lo']}, {stored['hi']}]"
                              f", new {new['value']} [{new['lo']}, {new['hi']}]")
