"""Experiment scales.

``ci``: the default; what the stored notebook outputs hold and nbval checks
(about a minute per chapter on 2 CPU cores).  ``full``: closer to the paper,
minutes to hours, on a GPU where one is present.
"""
SCALES = ("ci", "full")


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is a known scale name, else raise ``ValueError``."""
    if not isinstance(scale, str):
        raise TypeError(f"scale must be a str, one of {SCALES}; got {type(scale).__name__}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale!r}")
    return scale
