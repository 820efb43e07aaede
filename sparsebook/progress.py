"""Progress bars for long runs.

Shown at ``SCALE = "full"`` (minutes to hours); hidden at ``ci`` so that the
stored notebook outputs hold results only.  ``SPARSEBOOK_PROGRESS=1`` forces
them on, ``=0`` off.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable

from tqdm import tqdm


def progress(iterable: Iterable, desc: str = "", total: int | None = None, scale: str = "ci"):
    """Wrap ``iterable`` in a text progress bar (on stderr) when ``scale == "full"``."""
    env = os.environ.get("SPARSEBOOK_PROGRESS")
    enabled = scale == "full" if env is None else env not in ("0", "", "false")
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, dynamic_ncols=False, ncols=80, mininterval=1.0)
