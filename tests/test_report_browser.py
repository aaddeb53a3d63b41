"""report.html in a real browser: every image decodes, nothing overflows at 400 and 1280 px, no console error.

Chromium (Debian's ``chromium``; ``.ci/run`` installs it when it runs as
root) is driven headless over the DevTools protocol on a pipe
(``tests/browser.py``, no extra package). The tests skip, saying why, only
when no Chromium can be found.
"""

import pytest

import gmmflow
from gmmflow.results.to_idata import with_selection
from browser import Browser, find_chromium
from conftest import mixture_data

WIDTHS = (400, 1280)

# What the page looks like to the browser: images that did not decode, and the document's width against the
# viewport's (elements sticking out, outside the boxes that scroll on purpose, are named to say what overflows).
PAGE_STATE = """(() => {
  const images = [...document.images];
  const out = [...document.querySelectorAll('body *')].filter(e =>
      e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.parentElement.closest('.scroll, pre'));
  return {images: images.length,
          broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 40)),
          scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          overflowing: out.slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))};
})()"""


def problems(browser: Browser, page, width: int) -> tuple[list[str], dict]:
    """What is wrong with ``page`` at ``width`` px: broken images, horizontal overflow, console errors."""
    browser.console_errors.clear()
    browser.open(page, width)
    state = browser.evaluate(PAGE_STATE)
    found = [f"image does not decode: {name}" for name in state["broken"]]
    if state["scrollWidth"] > state["innerWidth"]:
        found.append(f"page is {state['scrollWidth']} px wide in a {state['innerWidth']} px viewport "
                     f"(overflowing: {state['overflowing']})")
    found += [f"console error: {e}" for e in browser.console_errors]
    return found, state


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found: install Debian's chromium (apt-get install chromium; .ci/run does this "
                    "when it runs as root) or set GMMFLOW_CHROMIUM to a Chromium or Chrome binary")
    with Browser(executable) as b:
        yield b


@pytest.fixture(scope="module")
def reports(posteriors, tmp_path_factory):
    """Reports of a 4-D posterior with a K table (the widest tables and plots) and of a 1-D EM fit."""
    root = tmp_path_factory.mktemp("browser")
    idata = posteriors[4]
    table = gmmflow.select_components(idata.observed_data.x.values, ks=[1, 2], seed=0, n_init=2)
    gmmflow.write_report(with_selection(idata, table), root / "posterior")
    em = gmmflow.fit_em(gmmflow.GMM(3), mixture_data(seed=1, n_per=40, d=1, K=3, spread=6.0), seed=0, n_init=3)
    gmmflow.write_report(em, root / "em")
    return {"posterior": (root / "posterior" / "report.html", 10), "em": (root / "em" / "report.html", 3)}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", ["posterior", "em"])
def test_report_in_a_browser(browser, reports, which, width):
    page, n_images = reports[which]
    found, state = problems(browser, page, width)
    assert found == []
    assert state["images"] == n_images and state["innerWidth"] == width


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    """The same checks on a page with each fault: an image that does not decode, a table wider than the
    screen outside a scroll box, a script error."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                   '<img alt="truncated" src="data:image/png;base64,iVBORw0KGgo=">'
                   '<table><tr><td style="white-space:nowrap">' + "wide " * 200 + "</td></tr></table>"
                   "<script>undefinedFunction()</script></body></html>")
    found, _ = problems(browser, bad, 400)
    assert found[0] == "image does not decode: truncated"
    assert found[1].startswith("page is ") and "in a 400 px viewport (overflowing: ['table'" in found[1]
    assert found[2].startswith("console error: Uncaught ReferenceError: undefinedFunction is not defined"), found
