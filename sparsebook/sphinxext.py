"""Sphinx extension: serve plotly.js from the built book, so explorable figures work offline.

Registered in ``_config.yml`` (``sphinx: extra_extensions``).  It copies the ``plotly.min.js``
of the installed ``plotly`` Python package into the site's ``_static`` folder and adds it to every
page (deferred, so it does not hold up the page; the figures' scripts wait for it).  No CDN: the
built site needs no network.  See :mod:`sparsebook.explore`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

PLOTLY_JS = "plotly.min.js"


def plotly_js_path() -> Path:
    """The installed plotly.js bundle (plotly's ``package_data``)."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the plotly package ships plotly.min.js in package_data")
    return path


def _copy_plotly(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_js_path(), static / PLOTLY_JS)


def setup(app):
    plotly_js_path()  # fail early, at configuration, when plotly is not installed
    app.add_js_file(PLOTLY_JS, loading_method="defer")
    app.connect("build-finished", _copy_plotly)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
