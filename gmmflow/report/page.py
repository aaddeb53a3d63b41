"""A result as a directory of PNGs and one self-contained ``report.html``: the entry points.

The page (``html_page``) opens with a verdict in sentences (``verdict``),
then the tables formatted for reading (``tables``) and the plots with their
captions; it embeds every image (base64 data URIs) and uses no external
style sheet or script, so it opens offline. Which plots and tables appear
depends on what the result holds (the plot registry, ``plots.registry``,
says what each plot needs): EM only, a posterior, posterior predictive
draws, a model-selection table.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from gmmflow.plots.registry import plots_for
from gmmflow.report.html_page import html_report
from gmmflow.results.files import atomic_directory, check_output_directory, load
from gmmflow.results.from_idata import model_from_idata, selection_from_idata

REPORT_FILE = "report.html"


def _figure(result):
    return np.ravel(result)[0].figure


def render_plots(idata, selection, directory: Path, dpi: int = 110) -> dict[str, tuple[str, str]]:
    """Write one PNG per supported plot; returns {name: (file name or error message, caption)}.

    A plot that fails is reported (and warned about) instead of stopping the others.
    """
    import matplotlib.pyplot as plt

    written = {}
    for spec in plots_for(idata, selection):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # ArviZ: subplot limits, KDE bandwidth
                fig = _figure(spec.draw(idata, selection))
            fig.savefig(directory / f"{spec.name}.png", dpi=dpi, bbox_inches="tight")
            written[spec.name] = (f"{spec.name}.png", spec.caption)
        except Exception as err:  # noqa: BLE001 - one broken plot must not lose the report
            warnings.warn(f"plot {spec.name!r} failed: {err}", RuntimeWarning, stacklevel=2)
            written[spec.name] = (f"error: {type(err).__name__}: {err}", spec.caption)
        finally:
            plt.close("all")
    return written


def write_report_into(idata, directory: Path, selection: pd.DataFrame | None = None) -> dict[str, tuple[str, str]]:
    """Write the PNGs and ``report.html`` into an existing directory; returns the plot index."""
    images = render_plots(idata, selection, directory)
    page = html_report(idata, selection, images, directory)
    (directory / REPORT_FILE).write_text(page, encoding="utf-8")
    return images


def write_report(idata: az.InferenceData | str | os.PathLike, out_dir: str | os.PathLike, *,
                 overwrite: bool = False) -> Path:
    """Write ``out_dir`` with one PNG per diagnostic plot and a self-contained ``report.html``.

    Parameters
    ----------
    idata : InferenceData or path
        A ``fit_em`` / ``sample_posterior`` result, or a file written by :func:`gmmflow.save`.
    out_dir : path
        Created whole or not at all (built in a temporary directory, then renamed).
        It may not be, contain or lie inside the result file ``idata`` names.
    overwrite : bool, default False
        Replace an existing ``out_dir``, if gmmflow wrote it (see ``results.placement``).

    Returns
    -------
    pathlib.Path
        ``out_dir / "report.html"``.
    """
    out_dir = Path(out_dir)
    inputs = [] if isinstance(idata, az.InferenceData) else [idata]
    check_output_directory(out_dir, overwrite, inputs)
    if not isinstance(idata, az.InferenceData):
        idata = load(idata)
    model_from_idata(idata)
    selection = selection_from_idata(idata)
    with atomic_directory(out_dir, overwrite, inputs) as tmp:
        write_report_into(idata, tmp, selection)
    return out_dir / REPORT_FILE
