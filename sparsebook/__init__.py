"""SparseBook: small, tested kernels behind an executable book on sparsity in neural networks.

One package per chapter (``sparsebook.<key>``: kernels, experiments, figures) plus shared parts:

- :mod:`sparsebook.stats`    estimates with uncertainty (exact, Monte Carlo, over seeds), paired differences
- :mod:`sparsebook.claims`   reproductions and consistency checks, verdicts on intervals, tables, scoreboard
- :mod:`sparsebook.models`, :mod:`sparsebook.train`   shared networks; the one training loop, fit, fit_seeds
- :mod:`sparsebook.seeding`  ``seed_everything`` (seeds and thread counts), ``over_seeds`` (worker pool)
- :mod:`sparsebook.plotting` the house style for figures
- :mod:`sparsebook.scales`   the ``ci`` / ``full`` scale names and their validation
"""
from sparsebook.scales import SCALES, check_scale
from sparsebook.seeding import over_seeds, seed_everything

__version__ = "0.1.0"

__all__ = ["seed_everything", "over_seeds", "SCALES", "check_scale", "__version__"]
