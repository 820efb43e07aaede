"""pytest plugin: make nbval execute cells the way Jupyter does.

nbval sends every cell with ``store_history=False``.  IPython decides whether a
trailing ``;`` suppresses a cell's result by looking at the last *stored* input,
so under nbval the ``;`` of one cell is judged on the previous cell's source:
``fig = ...; ax.plot(...);`` then displays results that Jupyter (and the stored
outputs) do not show.  Executing with ``store_history=True``, as Jupyter does,
removes the difference; nbval ignores execution counts in its comparison.
Loaded for every pytest run through ``addopts`` in pyproject.toml.
"""
from __future__ import annotations

try:
    import nbval.kernel as _kernel
except ImportError:  # pragma: no cover - nbval is a dev dependency
    _kernel = None


def _execute_cell_input(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


if _kernel is not None:
    _kernel.RunningKernel.execute_cell_input = _execute_cell_input
