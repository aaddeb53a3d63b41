"""The report page: one self-contained HTML file laid out from the report's contents.

No network, no external style sheet or script: the CSS is inline and every
image a base64 data URI. The layout works from phone width up: the page is
one column, every table scrolls inside its own box, images scale to the
column, long words wrap. Order: title, table of contents, verdict, the
sections of :mod:`gmmflow.report.outline`, plots with their captions,
settings and versions.
"""

from __future__ import annotations

import base64
import html
import struct
from pathlib import Path

from gmmflow.report import outline
from gmmflow import schema as S
from gmmflow.report.contents import (
    CalibrationContents,
    Contents,
    calibration_verdict,
    findings,
    gather,
    gather_calibration,
    title,
)
from gmmflow.report.tables import (
    Table,
    assignment_table,
    calibration_table,
    checks_table,
    components_table,
    information_table,
    key_value_table,
    modes_table,
    parameter_table,
    predictive_table,
    restarts_table,
    selection_table,
)
from gmmflow.report.number_format import fixed
from gmmflow.report.verdict import Finding, headline

MARKS = {"ok": "\u2713", "warning": "\u26a0", "info": "\u2022"}
STATUS_WORDS = {"ok": "passed", "warning": "needs attention", "info": "information"}

STYLE = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;line-height:1.45;color:#1f2328;
max-width:1200px;margin:0 auto;padding:1em;overflow-wrap:break-word}
h1{font-size:1.45em;margin:.3em 0 .6em}
h2{font-size:1.2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
h3{font-size:1em;margin-top:1.4em}
p.lead{font-size:1.05em;font-weight:600}
nav ol{columns:2 12em;margin:.3em 0;padding-left:1.4em}
.scroll{overflow-x:auto;max-width:100%;margin:.4em 0 1em}
table{border-collapse:collapse;font-size:.88em}
th,td{padding:.25em .65em;border-bottom:1px solid #e4e7eb;white-space:nowrap;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #bcc3cb;background:#f6f8fa;white-space:normal;vertical-align:bottom;
min-width:4em}
tbody th{white-space:normal;min-width:5em;max-width:18em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.ok{color:#1a7f37}
td.fail,tr.fail td,tr.fail th{background:#ffebe9;color:#a40e26}
tr.chosen td,tr.chosen th{background:#ddf4ff;font-weight:600}
ul.findings{list-style:none;padding:0;margin:.5em 0}
ul.findings li{margin:.45em 0;padding:.45em .75em;border-left:4px solid #8c959f;background:#f6f8fa}
ul.findings li.ok{border-color:#1a7f37;background:#eef8f0}
ul.findings li.warning{border-color:#cf222e;background:#ffebe9}
.mark{font-weight:700;margin-right:.35em}
li.ok .mark{color:#1a7f37}li.warning .mark{color:#cf222e}
figure{margin:1.5em 0}
img{display:block;max-width:100%;height:auto}
figcaption{color:#424a53;font-size:.92em;margin-top:.4em;max-width:75ch}
pre{overflow-x:auto;background:#f6f8fa;padding:.8em;font-size:.82em}
p.note{color:#424a53;font-size:.92em;max-width:75ch}
p.fail{color:#a40e26}
"""


# --------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------
def _cell(cell, tag: str = "td") -> str:
    classes = " ".join(c for c in (cell.kind if cell.kind == "num" else "", cell.flag) if c)
    attrs = f' class="{classes}"' if classes else ""
    if cell.kind == "label":
        tag, attrs = "th", attrs + ' scope="row"'
    return f"<{tag}{attrs}>{html.escape(cell.text)}</{tag}>"


def table_html(table: Table) -> str:
    """A :class:`Table` inside its own horizontally scrolling box."""
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in table.header)
    body = "\n".join(
        (f'<tr class="{flag}">' if flag else "<tr>") + "".join(_cell(c) for c in row) + "</tr>"
        for row, flag in zip(table.rows, table.row_flags))
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'
            "</div>")


def findings_html(found: list[Finding]) -> str:
    """The verdict: a headline, then one list item per finding with a link to its details."""
    items = "\n".join(
        f'<li class="{f.status}"><span class="mark" title="{STATUS_WORDS[f.status]}">{MARKS[f.status]}</span>'
        f'{html.escape(f.text)} <a href="#{f.section}">details</a></li>' for f in found)
    return f'<p class="lead">{html.escape(headline(found))}</p>\n<ul class="findings">\n{items}\n</ul>'


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def figure_html(directory: Path, name: str, file: str, caption: str) -> str:
    """One embedded plot with its caption, or the reason it could not be drawn."""
    anchor = outline.plot_anchor(name)
    if file.startswith("error:"):
        return (f'<figure id="{anchor}"><p class="note fail">The {html.escape(name)} plot could not be drawn '
                f"({html.escape(file[len('error:'):].strip())}).</p></figure>")
    data = (directory / file).read_bytes()
    width, height = png_size(data)
    return (f'<figure id="{anchor}"><img alt="{html.escape(name)} plot" width="{width}" height="{height}" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def section(anchor: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(outline.TITLES[anchor])}</h2>\n{body}\n</section>'


def contents_nav(anchors: list[str]) -> str:
    items = "".join(f'<li><a href="#{a}">{html.escape(outline.TITLES[a])}</a></li>' for a in anchors)
    return f'<nav aria-label="Contents"><strong>Contents</strong><ol>{items}</ol></nav>'


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------
def _notes(*texts: str) -> str:
    return "".join(f'<p class="note">{html.escape(t)}</p>' for t in texts)


def selection_body(contents: Contents) -> str:
    shown = (contents.model.covariance_type, contents.model.n_components)
    return (table_html(selection_table(contents.selection, shown))
            + _notes("BIC and ICL: lower is better. ELPD-LOO: higher is better; the best LOO is the simplest "
                     "model within one standard error of the highest ELPD. The highlighted row is the model "
                     "this report shows."))


def em_body(contents: Contents) -> str:
    w, mu, cov = contents.estimate
    return ("<h3>Estimate</h3>" + table_html(components_table(w, mu, cov, contents.features,
                                                              contents.model.covariance_type))
            + "<h3>Restarts</h3>" + table_html(restarts_table(contents.restarts))
            + _notes("The objective is the log-likelihood plus the log prior (the log-likelihood alone for "
                     "the MLE); the chosen restart has the highest."))


def sampling_body(contents: Contents) -> str:
    info = information_table(contents.checks)
    return table_html(checks_table(contents.checks)) + (table_html(info) if info is not None else "")


def modes_body(contents: Contents, figure: tuple[str, str] | None, directory: Path) -> str:
    """The modes table, what it means, stacking's ELPD (or how to get it), and the modes plot."""
    notes = ["The chains did not mix: they sit in separate modes of the posterior, groups of chains whose "
             "label-invariant quantities (sorted weights and means, log-likelihood) agree (pair r_hat below 1.1), "
             "each with the EM restart optima that lie in it. Summaries pooled over all chains average "
             "different explanations of the data."]
    if contents.stacking is not None:
        notes.append("Stacking (Yao, Vehtari & Gelman 2022) weighs the chains by their leave-one-out predictive "
                     "densities; the stacked predictive density's ELPD-LOO is "
                     f"{fixed(float(contents.stacking.attrs['elpd_stacked']), 1)}, beside each mode's above.")
    else:
        notes.append("gmmflow.stack_chains(result) weighs the modes by how well they predict the data (stacking) "
                     "and records the weights with the result.")
    return (table_html(modes_table(contents.modes, contents.stacking)) + _notes(*notes)
            + (figure_html(directory, "modes", *figure) if figure is not None else ""))


def parameters_body(contents: Contents) -> str:
    return (table_html(parameter_table(contents.parameters))
            + _notes("MAP \u2212 mean is the distance of EM's MAP from the posterior mean in posterior "
                     "standard deviations. Rows in red have the MAP outside the posterior interval."))


def settings_body(contents: Contents) -> str:
    return (table_html(key_value_table(contents.settings))
            + f"<h3>Model specification</h3><pre>{html.escape(contents.specification)}</pre>"
            + f"<h3>Resolved prior</h3><pre>{html.escape(contents.prior)}</pre>")


def plots_body(images: dict[str, tuple[str, str]], directory: Path) -> str:
    return "\n".join(figure_html(directory, name, file, caption) for name, (file, caption) in images.items())


# --------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------
def render(contents: Contents, images: dict[str, tuple[str, str]], directory: Path) -> str:
    """The HTML page of ``contents``; the plot PNGs named in ``images`` are read from ``directory``."""
    sampled = contents.checks is not None
    images = dict(images)
    modes_figure = images.pop("modes", None)  # shown in its own section
    bodies = {outline.VERDICT: findings_html(findings(contents))}
    if contents.selection is not None:
        bodies[outline.SELECTION] = selection_body(contents)
    bodies[outline.EM] = em_body(contents)
    if sampled:
        bodies[outline.SAMPLING] = sampling_body(contents)
        if contents.modes is not None:
            bodies[outline.MODES] = modes_body(contents, modes_figure, directory)
        bodies[outline.PARAMETERS] = parameters_body(contents)
        left_out = ("<p>Not available: this result keeps no observed data or pointwise log-likelihood (a Gibbs run on "
                    "more rows than are stored).</p>")
        bodies[outline.ASSIGNMENTS] = (left_out if contents.assignments is None
                                       else table_html(assignment_table(contents.assignments)))
        bodies[outline.PREDICTIVE] = (left_out if contents.predictive is None
                                      else table_html(predictive_table(contents.predictive)))
    if images:
        bodies[outline.PLOTS] = plots_body(images, directory)
    bodies[outline.SETTINGS] = settings_body(contents)
    bodies[outline.VERSIONS] = table_html(key_value_table(contents.versions, header=("package", "version")))
    return page(title(contents), bodies)


def page(heading: str, bodies: dict[str, str]) -> str:
    """The whole document: the sections of ``bodies`` (anchor -> HTML) in outline order, with contents."""
    anchors = [a for a in outline.ORDER if a in bodies]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(heading)}</title><style>{STYLE}</style></head>\n<body>\n"
            f"<h1>{html.escape(heading)}</h1>\n{contents_nav(anchors)}\n"
            + "\n".join(section(a, bodies[a]) for a in anchors) + "\n</body></html>\n")


def render_calibration(contents: CalibrationContents, images: dict[str, tuple[str, str]], directory: Path) -> str:
    """The page of a calibration result: verdict, the table of p-values, the rank plots, the settings."""
    model = contents.model
    bodies = {
        outline.VERDICT: findings_html(calibration_verdict(contents)),
        outline.CALIBRATION: table_html(calibration_table(contents.table, contents.alpha))
        + _notes("Under a sampler that draws the model's exact posterior, the rank of each quantity's true "
                 "value among the posterior draws is uniform. p (ECDF band): the simultaneous-band test of "
                 "Säilynoja et al. (2022); p (chi-square): Pearson's test on the rank bins. Rows in red fail "
                 "the ECDF test at the level shown."),
        outline.PLOTS: plots_body(images, directory),
        outline.SETTINGS: table_html(key_value_table(contents.settings))
        + f"<h3>Simulated from</h3><pre>{html.escape(contents.specification)}</pre>"
        + f"<h3>Sampled under</h3><pre>{html.escape(contents.sampling_specification)}</pre>",
        outline.VERSIONS: table_html(key_value_table(contents.versions, header=("package", "version"))),
    }
    heading = (f"gmmflow calibration report: {model.n_components}-component {model.covariance_type} Gaussian "
               f"mixture ({contents.n_sims} simulations)")
    return page(heading, bodies)


def html_report(idata, selection, images: dict[str, tuple[str, str]], directory: Path) -> str:
    """The report page of a result; images are read from ``directory`` and embedded."""
    if S.has_groups(idata, S.CALIBRATION):
        return render_calibration(gather_calibration(idata), images, directory)
    return render(gather(idata, selection), images, directory)
