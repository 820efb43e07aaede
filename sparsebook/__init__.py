"""SparseBook: small, tested kernels behind an executable book on sparsity in neural networks.

One module per chapter (``sparsebook.<key>``) plus shared parts:

- :mod:`sparsebook.claims`   claim records, verdicts computed from measurements, tables, JSON export
- :mod:`sparsebook.plotting` the house style for figures
- :mod:`sparsebook.seeding`  ``seed_everything`` (seeds and thread counts the results depend on)
- :mod:`sparsebook.scales`   the ``ci`` / ``full`` scale names and their validation
"""
from sparsebook.seeding import over_seeds, pin_instruction_sets, seed_everything

pin_instruction_sets()  # TEMPORARY
from sparsebook.scales import SCALES, check_scale  # noqa: E402

__version__ = "0.1.0"

__all__ = ["seed_everything", "over_seeds", "SCALES", "check_scale", "__version__"]
