"""A result as a directory of PNGs and one self-contained ``report.html``.

The HTML embeds every image (base64 data URIs) and uses no external style
sheet or script, so it opens offline. Which plots and tables appear depends
on what the result holds (the plot registry, ``plots.registry``, says what
each plot needs): EM only, a posterior, posterior predictive draws, a
model-selection table.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from gmmflow import schema as S
from gmmflow.plots.registry import plots_for
from gmmflow.results.files import atomic_directory, check_output_directory, load
from gmmflow.results.from_idata import model_from_idata, selection_from_idata
from gmmflow.workflows.compare import comparable, compare
from gmmflow.workflows.diagnostics import diagnose

PACKAGES = ("gmmflow", "numpy", "scipy", "pandas", "xarray", "pymc", "pytensor", "arviz", "nutpie",
            "matplotlib", "dask")
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


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _table(frame, float_format="{:.4g}".format) -> str:
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    return frame.to_html(float_format=float_format, na_rep="", border=0, classes="table")


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _image(directory: Path, file: str, caption: str) -> str:
    data = base64.b64encode((directory / file).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _summary(idata) -> pd.Series:
    est = idata[S.EM_ESTIMATE]
    attrs = idata.attrs
    return pd.Series({
        "method": attrs.get("method", ""),
        "observations": attrs.get("n_obs", ""),
        "features": ", ".join(str(f) for f in est[S.FEATURE].values),
        "components": int(est.sizes[S.COMPONENT]),
        "covariance type": attrs.get("covariance_type", ""),
        "EM objective": float(est["objective"]),
        "EM log-likelihood": float(est["log_likelihood"]),
        "EM converged": bool(est["converged"]),
        "EM iterations": int(est["n_iter"]),
        "EM restarts": int(idata[S.EM_RESTARTS].sizes[S.RESTART]),
        "seed": attrs.get("seed", ""),
        "sampler": attrs.get("sampler", "(not sampled)"),
        "created": attrs.get("created_at", ""),
    }, name="value")


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table.table{border-collapse:collapse;font-size:.85em}table.table td,table.table th{padding:.2em .6em;
border-bottom:1px solid #eee;text-align:right}figure{margin:1.5em 0}img{max-width:100%}
figcaption{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}
.bad{color:#b00}"""


def html_report(idata, selection, images: dict[str, tuple[str, str]], directory: Path) -> str:
    """The report page; images are read from ``directory`` and embedded."""
    model = model_from_idata(idata)
    parts = [_section("Run", _table(_summary(idata)))]
    if selection is not None:
        shown = selection.drop(columns=[c for c in ("warnings",) if c in selection])
        parts.append(_section("Number of components", _table(shown.set_index(["covariance_type", "k"]))))
    if S.has_groups(idata, S.POSTERIOR):
        parts.append(_section("Sampling diagnostics", _table(diagnose(idata))))
        parts.append(_section("Parameters: EM MAP against the posterior", _table(compare(idata))))
        for title, kind in (("Assignments", "assignments"), ("Predictive fit", "predictive")):
            body = _table(compare(idata, kind)) if comparable(idata, kind) else \
                "<p>Not available: the result keeps no observed data or pointwise log-likelihood.</p>"
            parts.append(_section(title, body))
    figures = []
    for name, (file, caption) in images.items():
        if file.startswith("error:"):
            figures.append(f'<p class="bad">{html.escape(name)}: {html.escape(file)}</p>')
        else:
            figures.append(_image(directory, file, caption))
    parts.append(_section("Plots", "\n".join(figures)))
    spec = json.dumps(json.loads(idata.attrs[S.MODEL_ATTR]), indent=2)
    hyper = idata.attrs.get(S.HYPERPARAMETERS_ATTR, "null")
    prior = "none (MLE)" if hyper == "null" else json.dumps(json.loads(hyper), indent=2)
    parts.append(_section("Model", f"<h3>Specification</h3><pre>{html.escape(spec)}</pre>"
                                   f"<h3>Resolved prior</h3><pre>{html.escape(prior)}</pre>"))
    parts.append(_section("Versions", _table(pd.Series(versions(), name="version"))))
    title = f"gmmflow report: {model.n_components}-component {model.covariance_type} Gaussian mixture"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n" + "\n".join(parts)
            + "\n</body></html>\n")


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
    overwrite : bool, default False
        Replace an existing ``out_dir``.

    Returns
    -------
    pathlib.Path
        ``out_dir / "report.html"``.
    """
    out_dir = Path(out_dir)
    check_output_directory(out_dir, overwrite)
    if not isinstance(idata, az.InferenceData):
        idata = load(idata)
    model_from_idata(idata)
    selection = selection_from_idata(idata)
    with atomic_directory(out_dir, overwrite) as tmp:
        write_report_into(idata, tmp, selection)
    return out_dir / REPORT_FILE
