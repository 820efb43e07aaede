"""pytest plugin for the notebook regression: execute cells as Jupyter does, compare measurements as measurements.

1. nbval sends every cell with ``store_history=False``.  IPython decides whether a trailing ``;``
   suppresses a cell's result by looking at the last *stored* input, so under nbval the ``;`` of
   one cell is judged on the previous cell's source.  Executing with ``store_history=True``, as
   Jupyter does, removes the difference; nbval ignores execution counts in its comparison.

2. Outputs that carry a sparsebook record (:data:`sparsebook.claims.CLAIMS_MIME`: a verdict
   table; :data:`sparsebook.stats.ESTIMATE_MIME`: estimates) are compared through that record,
   numerically, and their text and HTML renderings are left out of nbval's string comparison:

   - exact values and one-run values: equal to 1e-6 relative (records hold 9 digits);
   - estimates over seeds or Monte Carlo samples: the stored and the new 95% intervals must
     overlap (:func:`sparsebook.stats.agree`): another machine's rounding acts like a new draw;
   - verdicts: equal.  A verdict may differ only when the measurement agrees within its
     uncertainty *and* a threshold of its criterion lies within one interval half-width of the
     stored interval (the verdict sat on the edge); the test then passes with a warning that
     names the claim.  Claim ids, kinds and criteria must be equal.

3. Explorable figures (:data:`sparsebook.explore.EXPLORE_MIME`: a sweep precomputed over knob
   values) are compared through their sweep, and their text and HTML renderings are left out
   (the HTML embeds the same data and a content-hash id):

   - the knobs (names, labels, values, defaults), titles, axes and the traces' names must be equal;
   - exact curves: every value equal to one unit in the last stored digit (``digits``: 10 by
     default, i.e. 1e-9 relative; a figure that stores fewer digits to stay small is compared to
     its own rounding, never tighter than 1e-9);
   - stochastic curves (a trace with a 95% band, ``kind`` seeds or Monte Carlo): the stored and
     new bands must overlap at every point; missing values (null) must stay missing.

   Everything else (printed text, other MIME types) is compared by nbval as before.
Loaded for every pytest run through ``addopts`` in pyproject.toml.
"""
from __future__ import annotations

import copy
import itertools
import math
import warnings

try:
    import nbval.kernel as _kernel
    import nbval.plugin as _plugin
except ImportError:  # pragma: no cover - nbval is a dev dependency
    _kernel = _plugin = None

from sparsebook.claims import CLAIMS_MIME
from sparsebook.explore import EXPLORE_MIME
from sparsebook.stats import ESTIMATE_MIME, agree

_OURS = (CLAIMS_MIME, ESTIMATE_MIME, EXPLORE_MIME)
_RENDERINGS = ("text/plain", "text/html")


class VerdictMoved(UserWarning):
    """A verdict changed on re-execution, with its measurement within the stored uncertainty of a threshold."""


def _execute_cell_input(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


def _records(outputs):
    """(mime, payload) of every output carrying one of our records, in order; and the outputs without them."""
    found, stripped = [], []
    for out in outputs:
        data = out.get("data") or {}
        mime = next((m for m in _OURS if m in data), None)
        if mime is None:
            stripped.append(out)
            continue
        found.append((mime, data[mime]))
        rest = copy.deepcopy(out)
        for key in (mime,) + _RENDERINGS:
            rest["data"].pop(key, None)
        if rest["data"]:
            stripped.append(rest)
    return found, stripped


def _is_estimate(x) -> bool:
    return isinstance(x, dict) and "kind" in x and "value" in x


def compare_values(stored, new, where: str) -> list[str]:
    """Differences between two stored values (estimate records, lists, numbers, strings)."""
    if _is_estimate(stored) and _is_estimate(new):
        ok, why = agree(stored, new)
        return [] if ok else [f"{where}: {why}"]
    if isinstance(stored, list) and isinstance(new, list):
        if len(stored) != len(new):
            return [f"{where}: length {len(stored)} -> {len(new)}"]
        return [m for i, (a, b) in enumerate(zip(stored, new)) for m in compare_values(a, b, f"{where}[{i}]")]
    if isinstance(stored, bool) or isinstance(new, bool) or isinstance(stored, str) or isinstance(new, str):
        return [] if stored == new else [f"{where}: {stored!r} -> {new!r}"]
    if isinstance(stored, (int, float)) and isinstance(new, (int, float)):
        ok = math.isclose(float(stored), float(new), rel_tol=1e-6, abs_tol=1e-300)
        return [] if ok else [f"{where}: {stored!r} -> {new!r}"]
    return [] if stored == new else [f"{where}: {stored!r} -> {new!r}"]


def _near_threshold(record: dict) -> bool:
    """Whether a threshold of the claim's criteria lies within one half-width of its stored interval."""
    thresholds = list(record.get("thresholds", [])) + list(record.get("partial_thresholds", []))
    measured = record.get("measured")
    ests = measured if isinstance(measured, list) else [measured]
    for e in ests:
        if not _is_estimate(e) or e["kind"] not in ("seeds", "monte carlo"):
            continue
        hw = max(e["value"] - e["lo"], e["hi"] - e["value"])
        for t in thresholds:
            for tt in (t, -t):  # a decreasing trend compares the step with −tol
                if e["lo"] - hw <= tt <= e["hi"] + hw:
                    return True
    return False


def compare_claims(stored: dict, new: dict) -> tuple[list[str], list[str]]:
    """(errors, warnings) between two chapters' claim payloads."""
    errors, notes = [], []
    s_recs, n_recs = stored.get("claims", []), new.get("claims", [])
    if [r["id"] for r in s_recs] != [r["id"] for r in n_recs]:
        return [f"claim ids differ: {[r['id'] for r in s_recs]} -> {[r['id'] for r in n_recs]}"], []
    for s, n in zip(s_recs, n_recs):
        for key in ("kind", "criterion", "partial_criterion", "basis"):
            if s.get(key) != n.get(key):
                errors.append(f"{s['id']}: {key} {s.get(key)!r} -> {n.get(key)!r}")
        diffs = compare_values(s.get("measured"), n.get("measured"), f"{s['id']} measured")
        errors.extend(diffs)
        if s["verdict"] != n["verdict"]:
            if not diffs and _near_threshold(s):
                notes.append(f"{s['id']}: verdict {s['verdict']!r} -> {n['verdict']!r}; the measurement agrees "
                             "within its uncertainty and its stored interval lies within one half-width of a "
                             "threshold, so the verdict sits on the edge at this scale")
            else:
                errors.append(f"{s['id']}: verdict {s['verdict']!r} -> {n['verdict']!r}")
    return errors, notes


def _close(a, b, rtol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-300)


def compare_traces(stored: list, new: list, where: str, rtol: float) -> list[str]:
    """Differences between two lists of traces of an explorable figure."""
    if [t.get("name") for t in stored] != [t.get("name") for t in new]:
        return [f"{where}: traces {[t.get('name') for t in stored]} -> {[t.get('name') for t in new]}"]
    errs = []
    for s, n in zip(stored, new):
        w = f"{where} {s.get('name')!r}"
        for key in ("mode", "kind", "dash", "color"):
            if s.get(key) != n.get(key):
                errs.append(f"{w}: {key} {s.get(key)!r} -> {n.get(key)!r}")
        if any(len(s.get(k) or []) != len(n.get(k) or []) for k in ("x", "y", "lo", "hi")):
            errs.append(f"{w}: lengths differ")
            continue
        bad = [i for i, (a, b) in enumerate(zip(s["x"], n["x"])) if not _close(a, b, rtol)]
        if s.get("kind", "exact") == "exact" or "lo" not in s:
            bad += [i for i, (a, b) in enumerate(zip(s["y"], n["y"])) if not _close(a, b, rtol)]
        else:  # stochastic: the 95% bands must overlap point by point (missing stays missing)
            for i, (slo, shi, nlo, nhi) in enumerate(zip(s["lo"], s["hi"], n["lo"], n["hi"])):
                if None in (slo, shi, nlo, nhi):
                    if not (slo is None and nlo is None and shi is None and nhi is None):
                        bad.append(i)
                elif nlo > shi * (1 + rtol) + 1e-300 or slo > nhi * (1 + rtol) + 1e-300:
                    bad.append(i)
        if bad:
            i = bad[0]
            errs.append(f"{w}: {len(bad)} of {len(s['x'])} points differ, first at x = {s['x'][i]!r}: "
                        f"y {s['y'][i]!r} -> {n['y'][i]!r}")
    return errs


def compare_explore(stored: dict, new: dict) -> list[str]:
    """Differences between two sweeps of an explorable figure (see the module docstring)."""
    errs = []
    for key in ("version", "title", "xlabel", "ylabel", "log_x", "log_y", "digits", "knobs"):
        if stored.get(key) != new.get(key):
            errs.append(f"{key} {stored.get(key)!r} -> {new.get(key)!r}")
    if errs:
        return errs
    rtol = max(1e-9, 10.0 ** (1 - int(stored.get("digits", 10))))
    for key in ("x_range", "y_range"):
        a, b = stored.get(key), new.get(key)
        if (a is None) != (b is None) or (a is not None and not all(_close(u, v, rtol) for u, v in zip(a, b))):
            errs.append(f"{key} {a!r} -> {b!r}")
    errs += compare_traces(stored.get("fixed", []), new.get("fixed", []), "fixed", rtol)
    s_fr, n_fr = stored.get("frames", []), new.get("frames", [])
    if len(s_fr) != len(n_fr):
        return errs + [f"frames: {len(s_fr)} -> {len(n_fr)}"]
    names = [k["name"] for k in stored["knobs"]]
    combos = itertools.product(*[k["values"] for k in stored["knobs"]])
    for combo, s, n in zip(combos, s_fr, n_fr):
        errs += compare_traces(s, n, "frame " + ", ".join(f"{k}={v}" for k, v in zip(names, combo)), rtol)
    return errs


def compare_payloads(mime: str, stored, new) -> tuple[list[str], list[str]]:
    if mime == CLAIMS_MIME:
        return compare_claims(stored, new)
    if mime == EXPLORE_MIME:
        return compare_explore(stored, new), []
    s_est, n_est = stored.get("estimates", {}), new.get("estimates", {})
    # nbformat stores JSON outputs with sorted keys, so the order of names is not compared.
    if sorted(s_est) != sorted(n_est):
        return [f"estimate names differ: {sorted(s_est)} -> {sorted(n_est)}"], []
    errs = []
    if stored.get("title", "") != new.get("title", ""):
        errs.append(f"title {stored.get('title')!r} -> {new.get('title')!r}")
    for k in sorted(s_est):
        errs.extend(compare_values(s_est[k], n_est[k], k))
    return errs, []


def _compare_outputs(self, test, ref, skip_compare=None):
    t_found, t_rest = _records(test)
    r_found, r_rest = _records(ref)
    ok = _ORIGINAL_COMPARE(self, t_rest, r_rest, skip_compare)
    errors = []
    if [m for m, _ in t_found] != [m for m, _ in r_found]:
        errors.append(f"measurement outputs differ: stored {[m for m, _ in r_found]}, new {[m for m, _ in t_found]}")
    else:
        for (mime, new), (_, stored) in zip(t_found, r_found):
            errs, notes = compare_payloads(mime, stored, new)
            errors.extend(errs)
            for note in notes:
                warnings.warn(note, VerdictMoved, stacklevel=2)
    if errors:
        self.comparison_traceback = getattr(self, "comparison_traceback", []) + [
            "sparsebook measurements differ beyond their uncertainty:"] + [f"  {e}" for e in errors]
        return False
    return ok


if _kernel is not None:
    _kernel.RunningKernel.execute_cell_input = _execute_cell_input
    _ORIGINAL_COMPARE = _plugin.IPyNbCell.compare_outputs
    _plugin.IPyNbCell.compare_outputs = _compare_outputs
