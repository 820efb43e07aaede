"""Claims: what a paper says, what we measured (with its uncertainty), and a verdict computed from the two.

Two kinds of rows:

- a **reproduction** (:meth:`ClaimSet.add`) tests a paper's statement or printed number, at the
  paper's parameters where they fit; it records the quantity measured, the paper's value and
  where it is printed (``source``), and a criterion fixed before the measurement;
- a **consistency check** (:meth:`ClaimSet.check`) tests the book's own machinery (identities,
  a simulation against its formula, bounds, invariances).  Checks are shown in a table of their
  own and never counted as reproductions.

The measurement is a :class:`sparsebook.stats.Estimate` (exact, Monte Carlo with its standard
error, or a sample over seeds with a 95% interval), a list of estimates (the steps of a sweep),
or a bool.  A :class:`Criterion` decides on the whole interval (:meth:`Criterion.decide`):

- ``reproduced``: the whole interval meets the criterion;
- ``not reproduced``: the whole interval fails it;
- ``inconclusive``: the interval straddles the threshold: the measurement cannot decide at this scale;
- ``partial``: the criterion fails but a weaker criterion, stated beforehand (``partial=``), holds.

A plain number is taken as one run without an interval (``single``: legacy, shown as ``1 run``).
A :class:`ClaimSet` renders both tables and carries the records as JSON under
:data:`CLAIMS_MIME`, which is how the scoreboard, ``python -m sparsebook reproduce`` and the
notebook regression find them.

Example
-------
>>> from sparsebook.claims import ClaimSet, AtLeast
>>> from sparsebook.stats import from_seeds
>>> claims = ClaimSet("demo")
>>> c = claims.add("beats-chance", paper="ahmad2016", statement="accuracy is far above chance",
...                quantity="test accuracy", paper_value="> 0.5", source="Fig. 2",
...                measured=from_seeds([0.71, 0.74, 0.69, 0.73, 0.72]), criterion=AtLeast(0.5))
>>> c.verdict
'reproduced'
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sparsebook.stats import Estimate, as_estimate

#: MIME type of the JSON claim records a chapter's verdict cell displays.
CLAIMS_MIME = "application/vnd.sparsebook.claims+json"

REPRODUCED = "reproduced"
PARTIAL = "partial"
INCONCLUSIVE = "inconclusive"
NOT_REPRODUCED = "not reproduced"
VERDICTS = (REPRODUCED, PARTIAL, INCONCLUSIVE, NOT_REPRODUCED)

#: The verdicts of a consistency check.
PASSES, FAILS = "passes", "fails"
CHECK_VERDICTS = (PASSES, INCONCLUSIVE, FAILS)

REPRODUCTION, CHECK = "reproduction", "check"

_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")


def fmt(x: Any, digits: int = 3) -> str:
    """Format a number, an :class:`Estimate` or a sequence of them to ``digits`` significant digits."""
    if isinstance(x, Estimate):
        return x.text()
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.{digits}g}"
    if isinstance(x, (list, tuple, np.ndarray)):
        items = list(x) if isinstance(x, (list, tuple)) else np.asarray(x).ravel().tolist()
        return "[" + ", ".join(fmt(v, digits) for v in items) + "]"
    return str(x)


def _point_or_raise(x: Any, name: str = "measured") -> Estimate:
    if isinstance(x, (bool, np.bool_, str)) or x is None:
        raise TypeError(f"{name} must be a number or an Estimate; got {type(x).__name__}")
    if isinstance(x, Estimate):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or an Estimate; got {type(x).__name__}") from None
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    return as_estimate(v)


def _interval_decision(lo: float, hi: float, ok_lo: float, ok_hi: float,
                       lo_closed: bool = True, hi_closed: bool = True) -> bool | None:
    """Is ``[lo, hi]`` inside the accepted set ``{ok_lo ≤ x ≤ ok_hi}`` (True), outside it (False),
    or across its edge (None)?"""
    def inside(v):
        a = v >= ok_lo if lo_closed else v > ok_lo
        b = v <= ok_hi if hi_closed else v < ok_hi
        return a and b

    if inside(lo) and inside(hi):
        return True
    below = hi < ok_lo or (not lo_closed and hi <= ok_lo)
    above = lo > ok_hi or (not hi_closed and lo >= ok_hi)
    if below or above:
        return False
    return None


# ---------------------------------------------------------------------------
# Criteria
# ---------------------------------------------------------------------------
class Criterion:
    """Decides whether a measurement supports a claim.

    :meth:`decide` returns True (the whole interval meets it), False (the whole interval fails
    it) or None (the interval straddles a threshold).  :meth:`thresholds` lists the values at
    which the decision changes (used by the notebook regression to tell a verdict that may move
    with the arithmetic from one that must not).
    """

    def decide(self, measured: Any) -> bool | None:  # pragma: no cover - interface
        raise NotImplementedError

    def holds(self, measured: Any) -> bool:
        """True when :meth:`decide` is True (kept for point measurements)."""
        return self.decide(measured) is True

    def thresholds(self) -> tuple[float, ...]:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class AtLeast(Criterion):
    """measured >= threshold (on the whole interval)."""

    threshold: float

    def decide(self, measured):
        e = _point_or_raise(measured)
        return _interval_decision(e.lo, e.hi, self.threshold, math.inf)

    def thresholds(self):
        return (self.threshold,)

    def describe(self):
        return f"≥ {fmt(self.threshold)}"


@dataclass(frozen=True)
class AtMost(Criterion):
    """measured <= threshold (on the whole interval)."""

    threshold: float

    def decide(self, measured):
        e = _point_or_raise(measured)
        return _interval_decision(e.lo, e.hi, -math.inf, self.threshold)

    def thresholds(self):
        return (self.threshold,)

    def describe(self):
        return f"≤ {fmt(self.threshold)}"


@dataclass(frozen=True)
class Between(Criterion):
    """low <= measured <= high (on the whole interval)."""

    low: float
    high: float

    def __post_init__(self):
        if not self.low <= self.high:
            raise ValueError(f"Between needs low <= high; got low={self.low}, high={self.high}")

    def decide(self, measured):
        e = _point_or_raise(measured)
        return _interval_decision(e.lo, e.hi, self.low, self.high)

    def thresholds(self):
        return (self.low, self.high)

    def describe(self):
        return f"in [{fmt(self.low)}, {fmt(self.high)}]"


@dataclass(frozen=True)
class Within(Criterion):
    """|measured − target| <= atol + rtol·|target| (agreement with a paper's number), on the whole interval."""

    target: float
    rtol: float = 0.0
    atol: float = 0.0

    def __post_init__(self):
        if self.rtol < 0 or self.atol < 0 or (self.rtol == 0 and self.atol == 0):
            raise ValueError("Within needs rtol >= 0 and atol >= 0, not both zero")

    @property
    def tolerance(self) -> float:
        return self.atol + self.rtol * abs(self.target)

    def decide(self, measured):
        e = _point_or_raise(measured)
        return _interval_decision(e.lo, e.hi, self.target - self.tolerance, self.target + self.tolerance)

    def thresholds(self):
        return (self.target - self.tolerance, self.target + self.tolerance)

    def describe(self):
        parts = []
        if self.rtol:
            parts.append(f"{fmt(100 * self.rtol, 2)}%")
        if self.atol:
            parts.append(f"±{fmt(self.atol, 2)}")
        return f"within {' + '.join(parts)} of {fmt(self.target)}"


@dataclass(frozen=True)
class Monotone(Criterion):
    """A sweep is monotone: every step changes in ``direction`` by more than ``tol``.

    The measurement is either the list of step estimates (:func:`sparsebook.stats.steps`: paired
    per-seed differences between neighbouring sweep points), decided on each step's interval,
    or a plain sequence of values (one run, legacy), decided on its differences.  ``relative``
    (plain sequences only) divides each step by the previous value.
    """

    direction: str = "increasing"
    tol: float = 0.0
    relative: bool = False

    def __post_init__(self):
        if self.direction not in ("increasing", "decreasing"):
            raise ValueError(f"direction must be 'increasing' or 'decreasing'; got {self.direction!r}")
        if self.tol < 0:
            raise ValueError(f"tol must be >= 0; got {self.tol}")

    def _step_decisions(self, measured) -> list[bool | None]:
        if isinstance(measured, (list, tuple)) and measured and all(isinstance(m, Estimate) for m in measured):
            out = []
            for e in measured:
                lo, hi = (e.lo, e.hi) if self.direction == "increasing" else (-e.hi, -e.lo)
                out.append(_interval_decision(lo, hi, self.tol, math.inf, lo_closed=False))
            return out
        arr = np.asarray(measured, dtype=float)
        if arr.ndim != 1 or arr.size < 2:
            raise ValueError(f"measured must be a 1-D sequence of at least 2 numbers or a list of step "
                             f"Estimates; got shape {arr.shape}")
        if np.isnan(arr).any():
            raise ValueError("measured must not contain NaN")
        st = np.diff(arr)
        if self.relative:
            st = st / np.maximum(np.abs(arr[:-1]), np.finfo(float).tiny)
        if self.direction == "decreasing":
            st = -st
        return [bool(s > self.tol) for s in st]

    def decide(self, measured):
        d = self._step_decisions(measured)
        if all(x is True for x in d):
            return True
        if any(x is False for x in d):
            return False
        return None

    def thresholds(self):
        return (self.tol if self.direction == "increasing" else -self.tol,)

    def describe(self):
        extra = f" (each step > {fmt(self.tol)}{' relative' if self.relative else ''})" if self.tol else ""
        return f"strictly {self.direction}{extra}"


@dataclass(frozen=True)
class IsTrue(Criterion):
    """The measurement is a boolean computed by the experiment (e.g. "all points agree")."""

    what: str = "true"

    def decide(self, measured):
        if not isinstance(measured, (bool, np.bool_)):
            raise TypeError(f"IsTrue needs a bool measurement; got {type(measured).__name__}")
        return bool(measured)

    def thresholds(self):
        return ()

    def describe(self):
        return self.what


# ---------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------
def _measured_record(x: Any) -> Any:
    if isinstance(x, Estimate):
        return x.record()
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, Estimate) for v in x):
        return [v.record() for v in x]
    if isinstance(x, (int, np.integer)):
        return as_estimate(int(x)).record()
    if isinstance(x, (float, np.floating)):
        return as_estimate(float(x)).record()
    if isinstance(x, (list, tuple, np.ndarray)):
        return [float(f"{float(v):.9g}") for v in np.asarray(x, dtype=float).ravel()]
    return str(x)


def _basis(x: Any) -> str:
    """What the verdict rests on: ``exact``, ``K seeds``, ``Monte Carlo``, ``1 run`` or ``boolean``."""
    e = x[0] if isinstance(x, (list, tuple)) and x and isinstance(x[0], Estimate) else x
    if isinstance(e, Estimate):
        return {"exact": "exact", "single": "1 run", "monte carlo": "Monte Carlo",
                "seeds": f"{e.n} seeds"}[e.kind]
    if isinstance(x, (bool, np.bool_)):
        return "computed"
    return "1 run"


@dataclass
class Claim:
    """One claim, tested against a measurement.

    Attributes
    ----------
    id : str            ``<chapter>/<slug>``
    paper : str         BibTeX key of the paper in ``book/references.bib``
    statement : str     what the paper claims (reproduction) or what must hold (check), one sentence
    quantity : str      what we measured (with units)
    paper_value : str   the paper's number or statement for that quantity
    measured : Estimate | list[Estimate] | bool | number   the measurement (a number is one run, no interval)
    criterion : Criterion   decides ``reproduced``
    partial : Criterion | None  when the criterion fails but this holds, the verdict is ``partial``
    note : str          why a claim fails, is partial or inconclusive at our scale (shown in the table)
    source : str        where the paper prints its value (figure, table, section, equation)
    kind : str          ``"reproduction"`` or ``"check"``
    digits : int        significant digits for one-run values
    unit : str          unit of the measured value, shown after it (e.g. ``"bits"``)
    """

    id: str
    paper: str
    statement: str
    quantity: str
    paper_value: str
    measured: Any
    criterion: Criterion
    partial: Criterion | None = None
    note: str = ""
    source: str = ""
    kind: str = REPRODUCTION
    digits: int = 3
    unit: str = ""

    def __post_init__(self):
        if not isinstance(self.criterion, Criterion):
            raise TypeError(f"criterion must be a Criterion; got {type(self.criterion).__name__}")
        if self.partial is not None and not isinstance(self.partial, Criterion):
            raise TypeError(f"partial must be a Criterion or None; got {type(self.partial).__name__}")
        if self.kind not in (REPRODUCTION, CHECK):
            raise ValueError(f"kind must be {REPRODUCTION!r} or {CHECK!r}; got {self.kind!r}")
        for name in ("id", "paper", "statement", "quantity", "paper_value"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty str")
        # Evaluate once now so that a malformed measurement fails where it is made.
        self.verdict  # noqa: B018

    @property
    def verdict(self) -> str:
        """Computed from the interval: see the module docstring.  Checks read passes/inconclusive/fails."""
        main = self.criterion.decide(self.measured)
        if main is True:
            v = REPRODUCED
        elif main is None:
            v = INCONCLUSIVE
        elif self.partial is not None and self.partial.decide(self.measured) is True:
            v = PARTIAL
        else:
            v = NOT_REPRODUCED
        if self.kind == CHECK:
            return {REPRODUCED: PASSES, INCONCLUSIVE: INCONCLUSIVE}.get(v, FAILS)
        return v

    def measured_text(self) -> str:
        text = self._measured_text()
        if not self.unit:
            return text
        if " [" in text:  # "value [lo, hi] (n seeds)": the unit goes after the interval
            return text.replace(" (", f" {self.unit} (", 1) if text.endswith(")") else f"{text} {self.unit}"
        return f"{text} {self.unit}"

    def _measured_text(self) -> str:
        m = self.measured
        if isinstance(m, Estimate):
            return m.text() if m.kind != "single" else fmt(m.value, self.digits)
        if isinstance(m, (list, tuple)) and m and all(isinstance(v, Estimate) for v in m):
            return "steps " + "; ".join(v.text().rsplit(" (", 1)[0] for v in m)
        return fmt(m, self.digits)

    def record(self) -> dict:
        """The claim as a JSON-ready dict."""
        return {
            "id": self.id,
            "kind": self.kind,
            "paper": self.paper,
            "statement": self.statement,
            "quantity": self.quantity,
            "paper_value": self.paper_value,
            "source": self.source,
            "measured": _measured_record(self.measured),
            "measured_text": self.measured_text(),
            "basis": _basis(self.measured),
            "criterion": self.criterion.describe(),
            "thresholds": [float(t) for t in self.criterion.thresholds()],
            "partial_criterion": self.partial.describe() if self.partial else None,
            "partial_thresholds": [float(t) for t in self.partial.thresholds()] if self.partial else [],
            "verdict": self.verdict,
            "note": self.note,
        }


_VERDICT_STYLE = {
    REPRODUCED: "color:#1b7837;font-weight:bold",
    PASSES: "color:#1b7837;font-weight:bold",
    PARTIAL: "color:#b35806;font-weight:bold",
    INCONCLUSIVE: "color:#5e3c99;font-weight:bold",
    NOT_REPRODUCED: "color:#b2182b;font-weight:bold",
    FAILS: "color:#b2182b;font-weight:bold",
}

#: Colours of the verdicts in tables and in the scoreboard chart (colour-blind-safe diverging scheme).
VERDICT_COLORS = {REPRODUCED: "#1b7837", PARTIAL: "#e08214", INCONCLUSIVE: "#8073ac", NOT_REPRODUCED: "#b2182b",
                  PASSES: "#1b7837", FAILS: "#b2182b"}

#: Where the bibliography page puts each entry: ``_config.yml`` sets ``bibtex_cite_id: "cite-{key}"``.
BIBLIOGRAPHY_PAGE = "bibliography.html"

_BIB_CACHE: dict = {}


def _bib_labels() -> dict:
    """``{key: "Ahmad & Hawkins 2016"}`` read from ``book/references.bib`` beside the package (if present)."""
    if "labels" in _BIB_CACHE:
        return _BIB_CACHE["labels"]
    labels = {}
    bib = Path(__file__).resolve().parent.parent / "book" / "references.bib"
    if bib.is_file():
        text = bib.read_text(encoding="utf-8")
        for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, flags=re.S):
            key, body = m.group(1), m.group(2)
            au = re.search(r"author\s*=\s*[{\"](.*?)[}\"]\s*,?\s*\n", body, flags=re.S)
            yr = re.search(r"year\s*=\s*[{\"]?(\d{4})", body)
            if not au:
                continue
            names = [n.strip() for n in re.sub(r"\s+", " ", au.group(1)).split(" and ")]
            last = [n.split(",")[0].strip(" {}") if "," in n else n.split(" ")[-1].strip(" {}") for n in names]
            who = last[0] if len(last) == 1 else (f"{last[0]} & {last[1]}" if len(last) == 2 else f"{last[0]} et al.")
            labels[key] = f"{who} {yr.group(1) if yr else ''}".strip()
    _BIB_CACHE["labels"] = labels
    return labels


def citation_html(keys: str) -> str:
    """Links to the bibliography entries of ``keys`` (comma-separated BibTeX keys), labelled "Author Year"."""
    labels = _bib_labels()
    out = []
    for key in [k.strip() for k in str(keys).split(",") if k.strip()]:
        label = html.escape(labels.get(key, key))
        out.append(f'<a class="reference internal" href="{BIBLIOGRAPHY_PAGE}#cite-{html.escape(key)}">{label}</a>')
    return "; ".join(out)


_TABLE_STYLE = "table-layout:fixed;width:100%;border-collapse:collapse;font-size:0.85em"
_CELL_STYLE = "vertical-align:top;padding:4px 6px;overflow-wrap:anywhere;word-break:normal"


def _row_html(r: dict, with_chapter: bool = False) -> str:
    verdict = r["verdict"]
    slug = r["id"].split("/", 1)[-1]
    chapter = r["id"].split("/", 1)[0]
    is_check = r.get("kind", REPRODUCTION) == CHECK
    cite = "" if is_check or r.get("paper") in ("", "sparsebook") else f" ({citation_html(r['paper'])})"
    details = [f"<b>quantity</b>: {html.escape(str(r.get('quantity', '')))}",
               f"<b>criterion</b>: {html.escape(str(r.get('criterion', '')))}"]
    if r.get("partial_criterion"):
        details.append(f"<b>partial if</b>: {html.escape(str(r['partial_criterion']))}")
    if r.get("note"):
        details.append(f"<b>note</b>: {html.escape(str(r['note']))}")
    where = f'<a href="{chapter}.html">{html.escape(chapter)}</a> · ' if with_chapter else ""
    title = html.escape(r["id"])
    claim = (f"{where}<b title=\"{title}\">{html.escape(slug)}</b><br>{html.escape(str(r['statement']))}{cite}"
             f"<details><summary>details</summary>{'<br>'.join(details)}</details>")
    paper = html.escape(str(r.get("paper_value", "")))
    if r.get("source"):
        paper += f"<br><small>{html.escape(str(r['source']))}</small>"
    measured = f"{html.escape(str(r.get('measured_text', '')))}<br><small>{html.escape(str(r.get('basis', '')))}</small>"
    verdict_html = f'<span style="{_VERDICT_STYLE[verdict]}">{html.escape(verdict)}</span>'
    cells = (claim, paper if not is_check else html.escape(str(r.get("paper_value", ""))), measured, verdict_html)
    return (f'<tr data-id="{html.escape(r["id"])}" data-chapter="{html.escape(chapter)}" data-verdict="{html.escape(verdict)}">'
            + "".join(f'<td style="{_CELL_STYLE}">{c}</td>' for c in cells) + "</tr>")


def _render_html(records: Sequence[dict], kind: str = REPRODUCTION, caption: str = "",
                 with_chapter: bool = False, table_id: str = "") -> str:
    """A table that fits the text column: claim (statement, citation; quantity and criterion folded
    under "details"), the paper's value and where it is printed, our estimate with its basis, the verdict."""
    heads = (("check" if kind == CHECK else "claim", "44%"), ("expected" if kind == CHECK else "paper", "18%"),
             ("measured (95% interval)", "22%"), ("verdict", "16%"))
    head = "".join(f'<th style="width:{w};{_CELL_STYLE}">{h}</th>' for h, w in heads)
    rows = "".join(_row_html(r, with_chapter) for r in records)
    cap = f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>' if caption else ""
    tid = f' id="{table_id}"' if table_id else ""
    return (f'<table class="sparsebook-claims"{tid} style="{_TABLE_STYLE}">{cap}'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _render_text(records: Sequence[dict]) -> str:
    lines = []
    for r in records:
        src = f", {r['source']}" if r.get("source") else ""
        lines.append(f"[{r['verdict']}] {r['id']}: measured {r['measured_text']} [{r['basis']}] "
                     f"(criterion {r['criterion']}; paper: {r['paper_value']}{src})")
        if r.get("note"):
            lines.append(f"    note: {r['note']}")
    return "\n".join(lines)


def summarize(records: Iterable[dict]) -> dict:
    """Count the verdicts of reproductions, and checks apart.

    ``{"reproduced": n, "partial": n, "inconclusive": n, "not reproduced": n, "total": n,
    "checks": n, "checks passing": n}``.
    """
    counts = {v: 0 for v in VERDICTS}
    checks = passing = 0
    for r in records:
        if r.get("kind", REPRODUCTION) == CHECK:
            checks += 1
            passing += r["verdict"] == PASSES
        else:
            counts[r["verdict"]] += 1
    counts["total"] = sum(counts[v] for v in VERDICTS)
    counts["checks"] = checks
    counts["checks passing"] = passing
    return counts


def summary_line(s: dict) -> str:
    return (f"{s['reproduced']} reproduced, {s['partial']} partial, {s['inconclusive']} inconclusive, "
            f"{s['not reproduced']} not reproduced (of {s['total']}); "
            f"checks: {s['checks passing']} of {s['checks']} pass")


class ClaimSet:
    """One chapter's claims, in the order they are tested.

    Display it (last expression of a cell) to show the reproduction table, then the
    consistency-check table; the display also carries the JSON records under :data:`CLAIMS_MIME`.
    """

    def __init__(self, chapter: str):
        if not isinstance(chapter, str) or not _SLUG.match(chapter):
            raise ValueError(f"chapter must be a lower-case key like 'dendrites'; got {chapter!r}")
        self.chapter = chapter
        self.claims: list[Claim] = []

    def _new(self, slug: str, **kwargs) -> Claim:
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise ValueError(f"slug must be lower-case words joined by '-' or '_'; got {slug!r}")
        cid = f"{self.chapter}/{slug}"
        if any(c.id == cid for c in self.claims):
            raise ValueError(f"claim {cid!r} was already added")
        claim = Claim(id=cid, **kwargs)
        self.claims.append(claim)
        return claim

    def add(self, slug: str, **kwargs) -> Claim:
        """Create, store and return the reproduction ``<chapter>/<slug>`` (keywords as in :class:`Claim`)."""
        kwargs.setdefault("kind", REPRODUCTION)
        return self._new(slug, **kwargs)

    def check(self, slug: str, *, statement: str, quantity: str, measured: Any, criterion: Criterion,
              paper: str = "sparsebook", expected: str = "", note: str = "", digits: int = 3, unit: str = "") -> Claim:
        """Create, store and return the consistency check ``<chapter>/<slug>``.

        ``expected`` is what theory says the quantity should be (shown as its paper value).
        """
        return self._new(slug, paper=paper, statement=statement, quantity=quantity,
                         paper_value=expected or criterion.describe(), measured=measured,
                         criterion=criterion, note=note, kind=CHECK, digits=digits, unit=unit)

    def records(self) -> list[dict]:
        return [c.record() for c in self.claims]

    def to_json(self) -> str:
        return json.dumps({"chapter": self.chapter, "claims": self.records()}, indent=2, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write the records as JSON to ``path`` and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    def __len__(self):
        return len(self.claims)

    def __repr__(self):
        recs = self.records()
        s = summarize(recs)
        return f"{self.chapter}: {summary_line(s)}\n" + _render_text(recs)

    def _repr_mimebundle_(self, include=None, exclude=None):
        recs = self.records()
        repro = [r for r in recs if r["kind"] == REPRODUCTION]
        checks = [r for r in recs if r["kind"] == CHECK]
        body = _render_html(repro, REPRODUCTION, "Reproductions") if repro else ""
        if checks:
            body += _render_html(checks, CHECK, "Consistency checks (the book's own machinery)")
        return {"text/plain": repr(self), "text/html": body,
                CLAIMS_MIME: {"chapter": self.chapter, "claims": recs}}


# ---------------------------------------------------------------------------
# Scoreboard: collect the records every chapter notebook displayed
# ---------------------------------------------------------------------------
def claims_from_notebook(path: str | Path) -> list[dict]:
    """All claim records displayed in a notebook's stored outputs (empty if none)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            data = o.get("data", {})
            if CLAIMS_MIME in data:
                payload = data[CLAIMS_MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                out.extend(payload["claims"])
    return out


def scoreboard(notebooks: Iterable[str | Path]) -> "Scoreboard":
    """The claims of several chapter notebooks, as one displayable table."""
    per_chapter = {}
    for p in notebooks:
        p = Path(p)
        per_chapter[p.stem] = claims_from_notebook(p)
    return Scoreboard(per_chapter)


def basis_counts(records: Iterable[dict]) -> dict:
    """How many reproductions rest on what: ``{"≥ 5 seeds": n, "2-4 seeds": n, "Monte Carlo": n,
    "exact": n, "1 run": n, "computed": n}``."""
    out = {"≥ 5 seeds": 0, "2-4 seeds": 0, "Monte Carlo": 0, "exact": 0, "1 run": 0, "computed": 0}
    for r in records:
        if r.get("kind", REPRODUCTION) != REPRODUCTION:
            continue
        b = r.get("basis", "1 run")
        if b.endswith("seeds"):
            out["≥ 5 seeds" if int(b.split()[0]) >= 5 else "2-4 seeds"] += 1
        else:
            out[b] = out.get(b, 0) + 1
    return out


class Scoreboard:
    """Every chapter's claims: reproductions by verdict, checks apart, and what each verdict rests on."""

    def __init__(self, per_chapter: dict[str, list[dict]]):
        self.per_chapter = per_chapter

    def records(self) -> list[dict]:
        return [r for recs in self.per_chapter.values() for r in recs]

    def summary(self) -> dict:
        return {k: summarize(v) for k, v in self.per_chapter.items()}

    def __repr__(self):
        lines = [f"{k}: {summary_line(s)}" for k, s in self.summary().items()]
        lines.append(f"all chapters: {summary_line(summarize(self.records()))}")
        b = basis_counts(self.records())
        lines.append("reproductions rest on: " + ", ".join(f"{k} {v}" for k, v in b.items()))
        return "\n".join(lines)

    def plot(self):
        """The scoreboard as a picture: per chapter, reproductions by verdict (left) and checks (right)."""
        from sparsebook import plotting

        summ = self.summary()
        names = list(summ)[::-1]
        fig, (ax, bx) = plotting.figure(ncols=2, gridspec_kw={"width_ratios": [3, 1]})
        fig.set_size_inches(7.5, 0.45 * len(names) + 2.0)
        y = np.arange(len(names))
        left = np.zeros(len(names))
        for v in VERDICTS:
            n = np.array([summ[k][v] for k in names], dtype=float)
            ax.barh(y, n, left=left, color=VERDICT_COLORS[v], label=v, height=0.6)
            for yi, (l0, ni) in enumerate(zip(left, n)):
                if ni:
                    ax.text(l0 + ni / 2, yi, str(int(ni)), ha="center", va="center", color="white", fontsize=7)
            left += n
        ax.set_yticks(y, names)
        plotting.label(ax, "reproductions (count)", "chapter", "Reproductions by verdict")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=7, frameon=False)
        ok = np.array([summ[k]["checks passing"] for k in names], dtype=float)
        bad = np.array([summ[k]["checks"] - summ[k]["checks passing"] for k in names], dtype=float)
        bx.barh(y, ok, color=VERDICT_COLORS[PASSES], height=0.6, label="passes")
        bx.barh(y, bad, left=ok, color=VERDICT_COLORS[FAILS], height=0.6, label="fails or inconclusive")
        bx.set_yticks(y, [""] * len(names))
        plotting.label(bx, "checks (count)", "chapter (as left)", "Consistency checks")
        bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, fontsize=7, frameon=False)
        return plotting.finish(fig, legend=False)

    def _repr_mimebundle_(self, include=None, exclude=None):
        cols = VERDICTS + ("total",)
        plain = "vertical-align:top;padding:3px 4px;overflow-wrap:normal;word-break:normal"
        cell = f'style="{plain};text-align:right"'
        rows = []
        for k, s in list(self.summary().items()) + [("all chapters", summarize(self.records()))]:
            label = html.escape(k).replace("_", "_<wbr>")
            name = label if k == "all chapters" else f'<a href="{k}.html">{label}</a>'
            b = basis_counts(self.per_chapter.get(k, self.records()))
            rows.append(f'<tr><td style="{plain}">{name}</td>' + "".join(f"<td {cell}>{s[c]}</td>" for c in cols)
                        + f"<td {cell}>{s['checks passing']}/{s['checks']}</td>"
                        + f"<td {cell}>{b['≥ 5 seeds']}</td><td {cell}>{b['Monte Carlo'] + b['exact'] + b['computed']}</td>"
                        + f"<td {cell}>{b['1 run'] + b['2-4 seeds']}</td></tr>")
        short = {REPRODUCED: "repro&shy;duced", PARTIAL: "partial", INCONCLUSIVE: "incon&shy;clusive",
                 NOT_REPRODUCED: "not repro&shy;duced", "total": "total"}
        th = f'style="{plain};text-align:right;font-weight:bold"'
        head = (f'<tr><th style="{plain}">chapter</th>' + "".join(f"<th {th}>{short[c]}</th>" for c in cols)
                + f"<th {th}>checks passing</th><th {th}>on ≥ 5 seeds</th>"
                  f"<th {th}>exact or Monte Carlo</th><th {th}>one run</th></tr>")
        summary = (f'<table class="sparsebook-summary" style="width:100%;border-collapse:collapse;font-size:0.8em">'
                   f'<thead>{head}</thead>'
                   f'<tbody>{"".join(rows)}</tbody></table>')
        recs = self.records()
        repro = [r for r in recs if r.get("kind", REPRODUCTION) == REPRODUCTION]
        checks = [r for r in recs if r.get("kind") == CHECK]
        chapters = "".join(f'<option value="{html.escape(k)}">{html.escape(k)}</option>' for k in self.per_chapter)
        verdicts = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>'
                           for v in VERDICTS + CHECK_VERDICTS[::2])
        controls = (
            '<div class="sparsebook-filter" style="margin:0.8em 0">'
            '<label>chapter <select id="sb-filter-chapter"><option value="">all</option>' + chapters + "</select></label> "
            '<label>verdict <select id="sb-filter-verdict"><option value="">all</option>' + verdicts + "</select></label> "
            '<span id="sb-filter-count"></span></div>'
            "<script>(function(){function f(){var c=document.getElementById('sb-filter-chapter').value,"
            "v=document.getElementById('sb-filter-verdict').value,n=0;"
            "document.querySelectorAll('table.sparsebook-claims tbody tr').forEach(function(r){"
            "var show=(!c||r.dataset.chapter===c)&&(!v||r.dataset.verdict===v);r.style.display=show?'':'none';"
            "if(show)n++;});document.getElementById('sb-filter-count').textContent=n+' rows';}"
            "function init(){['sb-filter-chapter','sb-filter-verdict'].forEach(function(id){"
            "var e=document.getElementById(id);if(e)e.addEventListener('change',f);});"
            "if(document.getElementById('sb-filter-count'))f();}"
            "if(document.readyState==='loading'){document.addEventListener('DOMContentLoaded',init);}else{init();}"
            "})();</script>")
        body = (summary + controls
                + _render_html(repro, REPRODUCTION, "Reproductions", with_chapter=True, table_id="sb-reproductions"))
        if checks:
            body += _render_html(checks, CHECK, "Consistency checks", with_chapter=True, table_id="sb-checks")
        return {"text/plain": repr(self), "text/html": body}
