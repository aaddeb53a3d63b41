"""The README renders as written: balanced code fences, and the API it shows exists."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def fences(text: str) -> list[tuple[int, str]]:
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.lstrip().startswith("```")]


def test_code_fences_balance():
    """Every fence that opens a block is closed by a bare fence; a stray one would turn the rest into code."""
    marks = fences(README.read_text())
    assert len(marks) % 2 == 0, f"odd number of code fences: {marks}"
    for (open_line, opening), (close_line, closing) in zip(marks[::2], marks[1::2]):
        assert closing == "```", f"block opened at line {open_line} is closed at line {close_line} by {closing!r}"
        assert re.fullmatch(r"```[\w+-]*", opening), f"line {open_line}: {opening!r} does not open a block"


def test_fence_check_catches_a_stray_fence():
    text = "a\n```python\nx = 1\n```\nprose\n```\nmore prose\n"
    assert len(fences(text)) % 2 == 1


def test_gmmflow_plots_is_reachable_after_import_gmmflow():
    """As the README writes it: ``import gmmflow; gmmflow.plots.plot_clusters(...)``."""
    code = "import gmmflow; print(callable(gmmflow.plots.plot_clusters))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_every_local_image_and_link_the_readme_shows_exists():
    targets = re.findall(r"(?:\]\(|src=\")(docs/[^)\"]+)", README.read_text())
    assert any(t.endswith("report_faithful.png") for t in targets)
    missing = [t for t in targets if not (README.parent / t).is_file()]
    assert not missing, missing


def runnable_blocks(text: str, tier: str) -> list[tuple[int, str]]:
    """Python blocks marked ``<!-- runnable -->`` (tier "fast") or ``<!-- runnable: slow -->`` (tier "slow")."""
    marker = "<!-- runnable -->" if tier == "fast" else "<!-- runnable: slow -->"
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.strip() == marker and i + 1 < len(lines) and lines[i + 1].strip() == "```python":
            end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
            out.append((i + 2, "\n".join(lines[i + 2:end])))
    return out


def _run(block, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files (gmmflow.save ...)
    exec(compile(block, f"README.md:{line}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("line, block", runnable_blocks(README.read_text(), "fast"))
def test_runnable_readme_blocks_run_as_written(line, block, tmp_path, monkeypatch):
    _run(block, line, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("line, block", runnable_blocks(README.read_text(), "slow"))
def test_runnable_readme_blocks_that_sample_run_as_written(line, block, tmp_path, monkeypatch):
    _run(block, line, tmp_path, monkeypatch)


def test_the_reuse_section_uses_public_names_and_is_runnable():
    section = README.read_text().split("## Reusing the model in PyMC", 1)[1].split("\n## ", 1)[0]
    blocks = runnable_blocks(section, "slow")
    assert blocks, "the reuse section has no runnable code block"
    for _, block in blocks:
        private = re.findall(r"gmmflow\.(?:models|core|workflows|results|inputs)\b|\b_[a-z]\w*\(", block)
        assert not private, private
