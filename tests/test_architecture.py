"""The package's structure holds: layers import downward only, no cycles, no module revisited.

The layer order is the one ``docs/architecture.md`` draws; a module may
import from its own layer or any layer below, never above, and the import
graph between modules has no cycle. Imports inside functions count too
(they are for start-up time, never to hide a cycle).
"""

from __future__ import annotations

import ast
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import gmmflow

PACKAGE = Path(gmmflow.__file__).resolve().parent
ROOT = PACKAGE.parent

# lowest first; a prefix names a module or a whole sub-package
LAYERS = [
    ("foundation", ["gmmflow._version", "gmmflow.exceptions", "gmmflow.schema", "gmmflow.checks",
                    "gmmflow.defaults"]),
    ("kernels", ["gmmflow.kernels"]),  # optional compiled loops (numba) that core/ imports lazily
    ("numerics", ["gmmflow.core"]),
    ("inputs", ["gmmflow.inputs", "gmmflow.resources"]),
    ("models", ["gmmflow.models", "gmmflow.pymc"]),
    ("results", ["gmmflow.results"]),
    ("workflows", ["gmmflow.workflows"]),
    ("plots", ["gmmflow.plots"]),
    ("report", ["gmmflow.report"]),
    ("main job", ["gmmflow.main_job"]),
    ("command line", ["gmmflow.cli", "gmmflow.console"]),
    ("public API", ["gmmflow"]),  # the package's __init__: re-exports only
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer; add it to LAYERS and docs/architecture.md"
    return rank


def imports_of(module: str) -> set[str]:
    """gmmflow modules ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # "from gmmflow import schema" imports the module gmmflow.schema
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {name for name in found if name == "gmmflow" or name.startswith("gmmflow.")} - {module}


GRAPH = {m: {i for i in imports_of(m) if i in MODULES} for m in MODULES}


def test_every_module_has_a_unique_self_explaining_name():
    stems = [p.stem for p in MODULES.values() if p.stem != "__init__"]
    assert len(stems) == len(set(stems)), sorted(s for s in stems if stems.count(s) > 1)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward_only(module):
    upward = [(imp, LAYERS[layer_of(imp)][0]) for imp in sorted(GRAPH[module])
              if layer_of(imp) > layer_of(module)]
    assert not upward, f"{module} ({LAYERS[layer_of(module)][0]}) imports from higher layers: {upward}"


def test_core_is_pure_numerics():
    """core/ imports numpy, scipy, threadpoolctl and (lazily) dask; no pandas, xarray, arviz, pymc, files."""
    allowed = {"numpy", "scipy", "threadpoolctl", "dask", "__future__", "collections", "concurrent",
               "dataclasses", "functools", "operator", "typing", "warnings", "json", "math", "numbers"}
    for module, path in MODULES.items():
        if not module.startswith("gmmflow.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = name.split(".")[0]
                assert top in allowed | {"gmmflow"}, f"{module} imports {name}"
                if top == "gmmflow":
                    assert name.startswith(("gmmflow.core", "gmmflow.exceptions", "gmmflow.kernels")), \
                        f"{module} imports {name}"


def test_kernels_import_numpy_and_numba_only():
    """kernels/ is compiled code: numpy, numba and math, nothing from gmmflow (core/ keeps the
    numpy reference of every kernel and imports the kernel inside a function, falling back
    to that reference on ImportError)."""
    for module, path in MODULES.items():
        if not module.startswith("gmmflow.kernels"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] in {"numpy", "numba", "math", "__future__"}, f"{module} imports {name}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


def test_schema_names_are_not_spelled_out_elsewhere():
    """Group names live in gmmflow.schema; modules use its constants, not string literals."""
    groups = ["em_estimate", "em_restarts", "em_trace", "posterior_assignment", "observed_data",
              "posterior_predictive", "model_selection", "constant_data", "sample_stats"]
    pattern = re.compile(r"[\"'](" + "|".join(groups) + r")[\"']")
    offenders = {}
    for module, path in MODULES.items():
        if module == "gmmflow.schema":
            continue
        hits = pattern.findall(path.read_text())
        if hits:
            offenders[module] = sorted(set(hits))
    assert not offenders, offenders


# ---------------------------------------------------------------- the walk of a call
def _walk(call) -> list[tuple[str, str]]:
    """Run ``call`` and record every call between two gmmflow modules as (caller, callee) modules.

    The caller is the nearest gmmflow frame up the stack (calls made through
    numpy, PyMC or arviz on gmmflow's behalf count as made by it).
    """
    files = {str(p): m for m, p in MODULES.items()}
    edges = set()

    def owner(frame):
        while frame is not None:
            module = files.get(frame.f_code.co_filename)
            if module is not None:
                return module
            frame = frame.f_back
        return None

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = files.get(frame.f_code.co_filename)
        if callee is None:
            return
        caller = owner(frame.f_back)
        if caller is not None and caller != callee:
            edges.add((caller, callee))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return sorted(edges)


def _assert_never_returns(edges, entry: str):
    """Every call goes to the same or a lower layer, and the module call graph has no cycle:
    once the walk has left a module for a lower one, nothing calls back into it."""
    upward = [(a, b) for a, b in edges if layer_of(b) > layer_of(a)]
    assert not upward, f"{entry}: calls back up the layers: {upward}"
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    seen, done = set(), set()

    def visit(m, path):
        seen.add(m)
        for n in sorted(graph.get(m, ())):
            assert n not in path, f"{entry}: the walk returns to {n}: {' -> '.join(path + [n])}"
            if n not in done:
                visit(n, path + [n])
        done.add(m)

    for m in sorted(graph):
        if m not in done:
            visit(m, [m])


def test_the_walk_of_x_through_fit_em_never_returns_to_a_module():
    X = gmmflow.load_dataset("faithful")
    edges = _walk(lambda: gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0))
    assert ("gmmflow.workflows.em_fit", "gmmflow.core.em_driver") in edges
    _assert_never_returns(edges, "fit_em")


def test_the_walk_of_x_through_chunked_fit_em_never_returns_to_a_module():
    da = pytest.importorskip("dask.array")
    X = da.from_array(gmmflow.load_dataset("faithful").values, chunks=100)
    edges = _walk(lambda: gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0))
    assert ("gmmflow.core.em_driver", "gmmflow.core.dask_blocks") in edges
    _assert_never_returns(edges, "fit_em (dask)")


def test_the_walk_of_model_through_sample_posterior_never_returns_to_a_module(monkeypatch):
    """The NUTS backend's runner is replaced by fixed draws (its dispatch still runs)."""
    import arviz as az
    import xarray as xr

    X = gmmflow.load_dataset("faithful")
    em = gmmflow.fit_em(gmmflow.GMM(2), X, n_init=2, seed=0)

    def draws(*args):
        rng = np.random.default_rng(0)
        w = rng.dirichlet(200 * em.em_estimate.w.values + 1, size=(2, 30))
        mu = em.em_estimate.mu.values + 0.01 * rng.standard_normal((2, 30, 2, 2))
        cov = np.broadcast_to(em.em_estimate.cov.values, (2, 30, 2, 2, 2)).copy()
        return az.InferenceData(
            posterior=xr.Dataset({"w": (("chain", "draw", "a"), w), "mu": (("chain", "draw", "b", "c"), mu),
                                  "cov": (("chain", "draw", "b", "c", "e"), cov)}),
            sample_stats=xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 30), bool))}))

    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edges = _walk(lambda: gmmflow.sample_posterior(gmmflow.GMM(2), X, sampler="nutpie", chains=2,
                                                       draws=30, seed=0, em_kwargs={"n_init": 2}))
    assert ("gmmflow.workflows.posterior_sampling", "gmmflow.workflows.nuts_backends") in edges
    assert ("gmmflow.workflows.posterior_sampling", "gmmflow.results.to_idata") in edges
    _assert_never_returns(edges, "sample_posterior")


def _gibbs_walk(X):
    em = gmmflow.fit_em(gmmflow.GMM(2), gmmflow.load_dataset("faithful"), n_init=1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _walk(lambda: gmmflow.sample_posterior(gmmflow.GMM(2), X, em=em, sampler="gibbs", chains=2,
                                                      draws=20, tune=2, seed=0, progressbar=False))


def test_the_walk_of_model_through_gibbs_sampling_never_returns_to_a_module():
    edges = _gibbs_walk(gmmflow.load_dataset("faithful"))
    assert ("gmmflow.core.gibbs", "gmmflow.core.row_blocks") in edges
    assert ("gmmflow.core.row_blocks", "gmmflow.core.assignment_draws") in edges
    _assert_never_returns(edges, "sample_posterior (gibbs)")


def test_the_walk_of_chunked_x_through_gibbs_sampling_never_returns_to_a_module():
    da = pytest.importorskip("dask.array")
    edges = _gibbs_walk(da.from_array(gmmflow.load_dataset("faithful").values, chunks=100))
    assert ("gmmflow.core.gibbs", "gmmflow.core.dask_blocks") in edges
    _assert_never_returns(edges, "sample_posterior (gibbs, dask)")
