"""The report's tables and page: names not indices, digits per column, failures flagged, the page's layout.

Formatting is checked on hand-made tables (the layout of the workflows'
own); the page on fake posteriors (``conftest.fake_posterior``), which have
every group a sampled result has, without waiting for NUTS.
"""

import re
from html.parser import HTMLParser

import numpy as np
import pytest

import gmmflow
from gmmflow.report import outline
from gmmflow.report.html_page import png_size, table_html
from gmmflow.report.tables import (
    assignment_table,
    checks_table,
    components_table,
    information_table,
    parameter_table,
    predictive_table,
    restarts_table,
    selection_table,
)
from gmmflow.results.to_idata import with_selection
from test_report_verdict import (
    INSIDE,
    assignments_table,
    checks_table as hand_checks,
    parameters_table,
    predictive_table as hand_predictive,
    restarts,
    selection_table as hand_selection,
)


def texts(table):
    return [[c.text for c in row] for row in table.rows]


def column(table, header):
    i = table.header.index(header)
    return [row[i] for row in table.rows]


# ---------------------------------------------------------------- formatting
def test_parameter_table_names_rows_and_chooses_digits_per_column():
    rows = INSIDE + [("mu", 1, "waiting", None, 90.0, 80.0, 1.0, 78.0, 82.0)]
    table = parameter_table(parameters_table(rows))
    assert table.header == ("parameter", "EM MAP", "posterior mean", "posterior sd", "HDI 3%", "HDI 97%",
                            "MAP in HDI", "MAP \u2212 mean (sds)")
    names = column(table, "parameter")
    assert [c.text for c in names] == ["w[0]", "mu[0, waiting]", "var[1, waiting]", "corr[1, eruptions, waiting]",
                                       "mu[1, waiting]"]
    assert {c.kind for c in names} == {"label"}
    assert texts(table)[2] == ["var[1, waiting]", "33.70", "35.58", "4.0", "28.40", "43.90", "\u2713 inside",
                               "-0.47"]
    assert texts(table)[0][1:4] == ["0.3560", "0.3570", "0.030"]  # 4, 4 and 2 significant digits
    assert texts(table)[4][-2:] == ["\u2717 outside", "+10.00"]
    assert table.row_flags == ("", "", "", "", "fail")
    assert table.rows[4][6].flag == "fail" and table.rows[0][6].flag == "ok"


def test_checks_are_checks_and_relabelling_is_information():
    checks = hand_checks(max_r_hat=1.0112, divergences=3, draws_relabelled=312)
    table = checks_table(checks)
    assert column(table, "check")[0].text == "divergent transitions"
    assert "draws relabelled" not in str(texts(table))  # never shown as a check that cannot fail
    assert texts(table)[:2] == [["divergent transitions", "3", "= 0", "\u2717 failed"],
                                ["largest r_hat", "1.011", "\u2264 1.01", "\u2717 failed"]]
    assert texts(table)[2] == ["smallest bulk ESS", "2454", "\u2265 400", "\u2713 passed"]
    assert table.row_flags == ("fail", "fail", "", "", "", "")
    info = information_table(checks)
    assert info.header == ("information", "value")
    assert texts(info) == [["draws relabelled to EM's component order", "312 of 4000 (7.8%)"]]


def test_assignment_and_predictive_tables_read_as_words():
    table = assignment_table(assignments_table(7 / 272, 0.912))
    assert texts(table)[:3] == [["observations", "272"], ["hard labels that differ", "7 of 272 (2.6%)"],
                                ["adjusted Rand index", "0.912"]]
    assert table.rows[1][1].flag == "fail" and table.rows[0][1].flag == ""
    pred = predictive_table(hand_predictive(pareto=3))
    assert texts(pred) == [
        ["EM MAP (plug-in)", "-1130.5", "-4.156", "-1142.5", "18.2", "11.9", "11", "\u2013", "exact refits"],
        ["posterior", "-1130.4", "-4.156", "-1141.6", "17.0", "6.9", "11", "3", "PSIS-LOO"]]
    assert pred.rows[1][7].flag == "fail" and pred.rows[0][7].flag == ""


def test_selection_table_flags_the_shown_k_failed_fits_and_failed_checks():
    sel = hand_selection(bic=[1650.0, 1560.0, np.nan], icl=[1650.0, 1562.0, np.nan], elpd_diff=[8.0, 0.0, np.nan],
                         dse=[3.0, 0.0, np.nan], status=["ok", "ok", "failed"], r_hat=[1.0, 1.25, np.nan],
                         divergences=[0, 3, 0])
    table = selection_table(sel, ("full", 2))
    assert table.header[0] == "K" and column(table, "K")[0].text == "K = 1"
    assert "covariance" not in table.header  # one type: no column for it
    assert table.row_flags == ("", "chosen", "fail")
    assert column(table, "BIC \u2212 lowest")[0].text == "90.0"
    assert column(table, "largest r_hat")[1].flag == "fail" and column(table, "divergences")[1].flag == "fail"
    assert [c.text for c in column(table, "chosen by")] == ["\u2013", "BIC, ICL, LOO", "\u2013"]
    assert column(table, "status")[2].text == "failed: LinAlgError: not positive definite"
    assert [c.text for c in column(table, "ELPD-LOO \u00b1 se")] == ["-808.0 \u00b1 10.0", "-800.0 \u00b1 10.0",
                                                                   "\u2013"]
    assert column(table, "below the best ELPD \u00b1 se")[0].text == "8.0 \u00b1 3.0"
    all_ok = selection_table(hand_selection(bic=[1650.0, 1560.0], icl=[1650.0, 1562.0]), ("full", 2))
    assert "status" not in all_ok.header and "ELPD-LOO \u00b1 se" not in all_ok.header


def test_restarts_and_components_tables():
    table = restarts_table(restarts([-1130.5123, -1135.0], converged=[True, False], n_iter=[23, 1000]))
    assert texts(table) == [["restart 0", "-1130.51", "0.00", "\u2713 yes", "23", "\u2713 chosen"],
                            ["restart 1", "-1135.00", "4.49", "\u2717 no", "1000", ""]]
    assert table.row_flags == ("chosen", "")
    cov = np.array([[[4.0, 1.2], [1.2, 1.0]], [[1.0, -0.3], [-0.3, 0.25]]])
    comp = components_table([0.25, 0.75], [[1.0, 2.0], [3.0, 4.0]], cov, ["a", "b"], "full")
    assert comp.header == ("component", "weight", "mean a", "sd a", "mean b", "sd b", "corr a, b")
    expected_corr = [np.corrcoef(np.random.default_rng(0).multivariate_normal([0, 0], c, 200_000).T)[0, 1]
                     for c in cov]  # an independent route: the correlation of draws
    assert [float(r[-1].text) for r in comp.rows] == pytest.approx(expected_corr, abs=0.01)
    assert texts(comp)[0][:6] == ["component 0", "0.250", "1.000", "2.00", "2.000", "1.00"]
    assert "corr a, b" not in components_table([1.0], [[0.0, 0.0]], np.eye(2)[None], ["a", "b"], "diag").header


def test_no_table_shows_python_booleans_or_nan():
    tables = [parameter_table(parameters_table(INSIDE)), checks_table(hand_checks(chains=2)),
              assignment_table(assignments_table(0.0, 1.0)), predictive_table(hand_predictive()),
              restarts_table(restarts([-1.0, -2.0]))]
    words = {c.text for t in tables for row in t.rows for c in row}
    assert not words & {"True", "False", "nan", "NaN", "None"}


# ---------------------------------------------------------------- the page
class Page(HTMLParser):
    """Tables (header cells and first column), section ids, links, figures and their captions of a page."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.ids, self.links, self.sources, self.captions, self.scroll_boxes = [], [], [], [], [], 0
        self._cell = None
        self._row = None
        self._caption = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag in ("img", "script", "link") and ("src" in attrs or "href" in attrs):
            self.sources.append(attrs.get("src") or attrs.get("href"))
        if tag == "div" and attrs.get("class") == "scroll":
            self.scroll_boxes += 1
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
            self.tables[-1].append((attrs.get("class", ""), self._row))
        elif tag in ("td", "th"):
            self._cell = [tag, attrs.get("class", ""), ""]
        elif tag == "figcaption":
            self._caption = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(tuple(self._cell))
            self._cell = None
        elif tag == "figcaption":
            self.captions.append(self._caption)
            self._caption = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[2] += data
        if self._caption is not None:
            self._caption += data


def test_table_html_has_a_header_a_named_first_column_and_scrolls_in_its_box():
    html = table_html(checks_table(hand_checks(max_r_hat=1.3)))
    page = Page(html)
    assert page.scroll_boxes == 1 and html.startswith('<div class="scroll"><table>')
    header, *rows = page.tables[0]
    assert [c[2] for c in header[1]] == ["check", "value", "passes when", "result"]
    assert all(row[1][0][0] == "th" for row in rows)  # the first cell names the row
    assert rows[1][0] == "fail" and rows[1][1][3] == ("td", "fail", "\u2717 failed")


@pytest.fixture(scope="module")
def posterior_page(posteriors, tmp_path_factory):
    """A report of a 2-D fake posterior with a model-selection table (every section)."""
    idata = posteriors[2]
    table = gmmflow.select_components(idata.observed_data.x.values, ks=[1, 2, 3], seed=0, n_init=2)
    out = tmp_path_factory.mktemp("report") / "rep"
    gmmflow.write_report(with_selection(idata, table), out)
    return out / "report.html"


def test_page_opens_with_contents_then_the_verdict_and_every_section_is_linked(posterior_page):
    text = posterior_page.read_text()
    page = Page(text)
    sections = [i for i in page.ids if i in outline.ORDER]
    # every section of a posterior's page (a calibration result has a page of its own; a unimodal posterior
    # no modes section), in outline order
    assert sections == [a for a in outline.ORDER if a not in outline.CALIBRATION_ONLY + outline.MULTIMODAL_ONLY]
    assert [f"#{s}" for s in sections] == page.links[:len(sections)]  # the table of contents comes first
    body = text[text.index("<body>"):]
    assert body.index('<nav') < body.index('id="verdict"') < body.index('id="selection"')
    verdict = body[body.index('id="verdict"'):body.index('id="selection"')]
    assert "is shown, chosen by BIC: it has the lowest BIC" in verdict
    assert "Sampling" in verdict and "EM converged" in verdict
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text


def test_page_tables_have_no_bare_index_and_no_python_values(posterior_page):
    page = Page(posterior_page.read_text())
    assert len(page.tables) >= 9
    for table in page.tables:
        header, *rows = table
        assert all(c[2].strip() for c in header[1]), header  # every column is named
        first = [row[1][0][2] for row in rows]
        assert all(row[1][0][0] == "th" for row in rows)
        assert first != [str(i) for i in range(len(rows))], first  # not a bare 0..n-1 index
        cells = {c[2].strip() for row in rows for c in row[1]}
        assert not cells & {"True", "False", "nan", "NaN", "None"}


def test_page_is_self_contained_and_every_plot_has_a_caption(posterior_page):
    page = Page(posterior_page.read_text())
    assert page.sources and all(s.startswith("data:image/png;base64,") for s in page.sources)
    assert not re.search(r"(src|href)=\"(https?:)?//", posterior_page.read_text())
    figures = [i for i in page.ids if i.startswith("plot-")]
    assert len(figures) == len(page.sources) == len(page.captions) == 10
    assert all(len(c) > 40 for c in page.captions)
    assert "plot-selection" in figures


def test_png_size_reads_the_header(posterior_page):
    png = next(posterior_page.parent.glob("*.png")).read_bytes()
    import matplotlib.image

    height, width = matplotlib.image.imread(posterior_page.parent / "clusters.png").shape[:2]
    assert png_size((posterior_page.parent / "clusters.png").read_bytes()) == (width, height)
    with pytest.raises(ValueError, match=re.escape("not a PNG file")):
        png_size(b"GIF89a" + png[6:])


def test_em_only_page_says_what_em_found(tmp_path):
    from conftest import mixture_data

    em = gmmflow.fit_em(gmmflow.GMM(2), mixture_data(n_per=30, K=2), seed=0, n_init=4)
    gmmflow.write_report(em, tmp_path / "rep")
    text = (tmp_path / "rep" / "report.html").read_text()
    page = Page(text)
    assert [i for i in page.ids if i in outline.ORDER] == ["verdict", "em", "plots", "settings", "versions"]
    assert re.search(r"EM converged in \d+ iterations?; 4 of 4 restarts reached the best objective", text)
    assert "The component weights are 0.500 (component 0), 0.500 (component 1)." in text
    assert "init hc+kmeans++, max_iter 1000, tol 1e-08" in text


def test_every_plot_caption_says_what_to_look_for():
    from gmmflow.plots import registered

    for spec in registered():
        assert "Look for" in spec.caption, spec.name
