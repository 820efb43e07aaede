"""Claims: what a paper says, what we measured, and a verdict computed from the two.

A :class:`Claim` pairs a paper's statement with a measured value and a
:class:`Criterion`; its verdict (``reproduced``, ``partial`` or
``not reproduced``) is computed from the measurement, never typed.  A
:class:`ClaimSet` holds one chapter's claims, renders the verdict table in a
notebook and carries the records as JSON under the MIME type
:data:`CLAIMS_MIME`, which is how the scoreboard page and
``python -m sparsebook reproduce`` find every chapter's results.

Example
-------
>>> from sparsebook.claims import ClaimSet, AtMost
>>> claims = ClaimSet("demo")
>>> c = claims.add("small-error", paper="ahmad2016", statement="the error is tiny",
...                quantity="false-match rate", paper_value="< 1e-9",
...                measured=3e-12, criterion=AtMost(1e-9))
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

#: MIME type of the JSON claim records a chapter's verdict cell displays.
CLAIMS_MIME = "application/vnd.sparsebook.claims+json"

REPRODUCED = "reproduced"
PARTIAL = "partial"
NOT_REPRODUCED = "not reproduced"
VERDICTS = (REPRODUCED, PARTIAL, NOT_REPRODUCED)

_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")


def _as_float(x: Any, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number; got {x!r}") from None
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    return v


def _as_sequence(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 numbers; got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN")
    return arr


def fmt(x: Any, digits: int = 3) -> str:
    """Format a number (or a sequence of numbers) to ``digits`` significant digits."""
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
        return "[" + ", ".join(fmt(v, digits) for v in np.asarray(x).ravel().tolist()) + "]"
    return str(x)


# ---------------------------------------------------------------------------
# Criteria
# ---------------------------------------------------------------------------
class Criterion:
    """Decides whether a measured value supports a claim.

    Subclasses implement :meth:`holds` (``measured -> bool``) and :meth:`describe`.
    """

    def holds(self, measured: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class AtLeast(Criterion):
    """measured >= threshold."""

    threshold: float

    def holds(self, measured):
        return _as_float(measured, "measured") >= self.threshold

    def describe(self):
        return f"≥ {fmt(self.threshold)}"


@dataclass(frozen=True)
class AtMost(Criterion):
    """measured <= threshold."""

    threshold: float

    def holds(self, measured):
        return _as_float(measured, "measured") <= self.threshold

    def describe(self):
        return f"≤ {fmt(self.threshold)}"


@dataclass(frozen=True)
class Between(Criterion):
    """low <= measured <= high."""

    low: float
    high: float

    def __post_init__(self):
        if not self.low <= self.high:
            raise ValueError(f"Between needs low <= high; got low={self.low}, high={self.high}")

    def holds(self, measured):
        return self.low <= _as_float(measured, "measured") <= self.high

    def describe(self):
        return f"in [{fmt(self.low)}, {fmt(self.high)}]"


@dataclass(frozen=True)
class Within(Criterion):
    """|measured − target| <= atol + rtol·|target| (agreement with a paper's number)."""

    target: float
    rtol: float = 0.0
    atol: float = 0.0

    def __post_init__(self):
        if self.rtol < 0 or self.atol < 0 or (self.rtol == 0 and self.atol == 0):
            raise ValueError("Within needs rtol >= 0 and atol >= 0, not both zero")

    def holds(self, measured):
        m = _as_float(measured, "measured")
        return abs(m - self.target) <= self.atol + self.rtol * abs(self.target)

    def describe(self):
        parts = []
        if self.rtol:
            parts.append(f"{fmt(100 * self.rtol, 2)}%")
        if self.atol:
            parts.append(f"±{fmt(self.atol, 2)}")
        return f"within {' + '.join(parts)} of {fmt(self.target)}"


@dataclass(frozen=True)
class Monotone(Criterion):
    """A measured sequence is monotone: each step changes in ``direction`` by more than ``tol``.

    ``direction`` is ``"increasing"`` or ``"decreasing"``; ``tol`` (>= 0) is the
    smallest change per step that counts (a relative tolerance when ``relative``).
    """

    direction: str = "increasing"
    tol: float = 0.0
    relative: bool = False

    def __post_init__(self):
        if self.direction not in ("increasing", "decreasing"):
            raise ValueError(f"direction must be 'increasing' or 'decreasing'; got {self.direction!r}")
        if self.tol < 0:
            raise ValueError(f"tol must be >= 0; got {self.tol}")

    def holds(self, measured):
        arr = _as_sequence(measured, "measured")
        steps = np.diff(arr)
        if self.relative:
            steps = steps / np.maximum(np.abs(arr[:-1]), np.finfo(float).tiny)
        if self.direction == "decreasing":
            steps = -steps
        return bool(np.all(steps > self.tol))

    def describe(self):
        extra = f" (each step > {fmt(self.tol)}{' relative' if self.relative else ''})" if self.tol else ""
        return f"strictly {self.direction}{extra}"


@dataclass(frozen=True)
class IsTrue(Criterion):
    """The measurement is a boolean computed by the experiment (e.g. "all points agree")."""

    what: str = "true"

    def holds(self, measured):
        if not isinstance(measured, (bool, np.bool_)):
            raise TypeError(f"IsTrue needs a bool measurement; got {type(measured).__name__}")
        return bool(measured)

    def describe(self):
        return self.what


# ---------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(f"{float(x):.6g}")
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in np.asarray(x).tolist()]
    return str(x)


@dataclass
class Claim:
    """One claim of a paper, tested against a measurement.

    Attributes
    ----------
    id : str            ``<chapter>/<slug>``
    paper : str         BibTeX key of the paper in ``book/references.bib``
    statement : str     what the paper claims, in one sentence
    quantity : str      what we measured (with units)
    paper_value : str   the paper's number or statement for that quantity
    measured : Any      the measured value (number, sequence or bool)
    criterion : Criterion   decides ``reproduced``
    partial : Criterion | None  when the criterion fails but this holds, the verdict is ``partial``
    note : str          why a claim fails or is partial at our scale (shown in the table)
    digits : int        significant digits for display
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
    digits: int = 3

    def __post_init__(self):
        if not isinstance(self.criterion, Criterion):
            raise TypeError(f"criterion must be a Criterion; got {type(self.criterion).__name__}")
        if self.partial is not None and not isinstance(self.partial, Criterion):
            raise TypeError(f"partial must be a Criterion or None; got {type(self.partial).__name__}")
        for name in ("id", "paper", "statement", "quantity", "paper_value"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty str")
        # Evaluate once now so that a malformed measurement fails where it is made.
        self.verdict  # noqa: B018

    @property
    def verdict(self) -> str:
        """``reproduced`` if the criterion holds, ``partial`` if only ``partial`` holds, else ``not reproduced``."""
        if self.criterion.holds(self.measured):
            return REPRODUCED
        if self.partial is not None and self.partial.holds(self.measured):
            return PARTIAL
        return NOT_REPRODUCED

    def record(self) -> dict:
        """The claim as a JSON-ready dict."""
        return {
            "id": self.id,
            "paper": self.paper,
            "statement": self.statement,
            "quantity": self.quantity,
            "paper_value": self.paper_value,
            "measured": _jsonable(self.measured),
            "measured_text": fmt(self.measured, self.digits),
            "criterion": self.criterion.describe(),
            "partial_criterion": self.partial.describe() if self.partial else None,
            "verdict": self.verdict,
            "note": self.note,
        }


_VERDICT_STYLE = {
    REPRODUCED: "color:#1b7837;font-weight:bold",
    PARTIAL: "color:#b35806;font-weight:bold",
    NOT_REPRODUCED: "color:#b2182b;font-weight:bold",
}

_COLUMNS = ("id", "statement", "paper_value", "measured_text", "criterion", "verdict")
_HEADERS = ("claim", "statement", "paper", "measured", "criterion", "verdict")


def _render_html(records: Sequence[dict], with_paper: bool = True) -> str:
    rows = []
    for r in records:
        cells = []
        for col in _COLUMNS:
            text = html.escape(str(r[col]))
            if col == "statement" and with_paper:
                text += f" <small>[{html.escape(r['paper'])}]</small>"
            if col == "verdict":
                text = f'<span style="{_VERDICT_STYLE[r["verdict"]]}">{text}</span>'
                if r.get("note"):
                    text += f"<br><small>{html.escape(r['note'])}</small>"
            cells.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in _HEADERS)
    return (
        '<table class="sparsebook-claims">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _render_text(records: Sequence[dict]) -> str:
    lines = []
    for r in records:
        lines.append(f"[{r['verdict']}] {r['id']}: measured {r['measured_text']} (criterion {r['criterion']}; paper: {r['paper_value']})")
        if r.get("note"):
            lines.append(f"    note: {r['note']}")
    return "\n".join(lines)


def summarize(records: Iterable[dict]) -> dict:
    """Count verdicts: ``{"reproduced": n1, "partial": n2, "not reproduced": n3, "total": n}``."""
    counts = {v: 0 for v in VERDICTS}
    for r in records:
        counts[r["verdict"]] += 1
    counts["total"] = sum(counts[v] for v in VERDICTS)
    return counts


class ClaimSet:
    """One chapter's claims, in the order they are tested.

    Display it (last expression of a cell) to show the verdict table; the display
    also carries the JSON records under :data:`CLAIMS_MIME` for the scoreboard.
    """

    def __init__(self, chapter: str):
        if not isinstance(chapter, str) or not _SLUG.match(chapter):
            raise ValueError(f"chapter must be a lower-case key like 'dendrites'; got {chapter!r}")
        self.chapter = chapter
        self.claims: list[Claim] = []

    def add(self, slug: str, **kwargs) -> Claim:
        """Create, store and return the claim ``<chapter>/<slug>`` (keyword arguments as in :class:`Claim`)."""
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise ValueError(f"slug must be lower-case words joined by '-' or '_'; got {slug!r}")
        cid = f"{self.chapter}/{slug}"
        if any(c.id == cid for c in self.claims):
            raise ValueError(f"claim {cid!r} was already added")
        claim = Claim(id=cid, **kwargs)
        self.claims.append(claim)
        return claim

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
        s = summarize(self.records())
        return (f"{self.chapter}: {s['reproduced']} reproduced, {s['partial']} partial, "
                f"{s['not reproduced']} not reproduced (of {s['total']})\n" + _render_text(self.records()))

    def _repr_mimebundle_(self, include=None, exclude=None):
        recs = self.records()
        return {
            "text/plain": repr(self),
            "text/html": _render_html(recs, with_paper=True),
            CLAIMS_MIME: {"chapter": self.chapter, "claims": recs},
        }


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


class Scoreboard:
    """Every chapter's claims; displays a summary line per chapter and the full table."""

    def __init__(self, per_chapter: dict[str, list[dict]]):
        self.per_chapter = per_chapter

    def records(self) -> list[dict]:
        return [r for recs in self.per_chapter.values() for r in recs]

    def summary(self) -> dict:
        return {k: summarize(v) for k, v in self.per_chapter.items()}

    def __repr__(self):
        lines = []
        for k, s in self.summary().items():
            lines.append(f"{k}: {s['reproduced']} reproduced, {s['partial']} partial, "
                         f"{s['not reproduced']} not reproduced (of {s['total']})")
        tot = summarize(self.records())
        lines.append(f"all chapters: {tot['reproduced']} reproduced, {tot['partial']} partial, "
                     f"{tot['not reproduced']} not reproduced (of {tot['total']})")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None):
        rows = []
        for k, s in self.summary().items():
            rows.append(f"<tr><td><a href=\"{k}.html\">{html.escape(k)}</a></td><td>{s['reproduced']}</td>"
                        f"<td>{s['partial']}</td><td>{s['not reproduced']}</td><td>{s['total']}</td></tr>")
        head = "<tr><th>chapter</th><th>reproduced</th><th>partial</th><th>not reproduced</th><th>claims</th></tr>"
        summary = f'<table class="sparsebook-summary"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
        return {"text/plain": repr(self), "text/html": summary + _render_html(self.records())}
