"""Combine alternating ``bench/em_small.py`` runs of two trees into one table.

    python bench/em_small_combine.py RUNS.txt

``RUNS.txt`` holds the outputs of ``em_small.py`` on main's code and on a
branch, each preceded by a line ``=== round R tree PATH ...`` (a PATH
containing ``wt-`` is the branch, any other main), run alternately in one
session on a shared machine. Per cell, each tree's time is its minimum over
its runs, mclust's and sklearn's the minimum over all runs (they time the
same R and sklearn code in every run). Prints the cells, the branch/main
ratios and both trees' ratios against mclust and sklearn with the targets
(<= 1.0x mclust, <= 0.3x sklearn).
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd

COLUMNS = ["data", "K", "type", "gm_mle_s", "iters", "sk_s", "gm_map_s", "mc_mle_s", "mc_map_s",
           "gm/sk", "gm/mc mle", "gm/mc map"]
TARGETS = (("branch/main mle", None), ("branch/main map", None), ("main/mc mle", 1.0), ("branch/mc mle", 1.0),
           ("main/mc map", 1.0), ("branch/mc map", 1.0), ("main/sk", 0.3), ("branch/sk", 0.3))


def read_runs(path: str) -> pd.DataFrame:
    """Every cell of every run, with its tree ("main" or "branch") and round."""
    parts = re.split(r"^=== round (\d) tree (\S+) .*$", open(path).read(), flags=re.M)
    frames = []
    for rnd, tree, body in zip(parts[1::3], parts[2::3], parts[3::3]):
        rows = [line.split() for line in body.splitlines() if re.match(r"^\s*(faithful|iris)\s", line)]
        if rows:
            frames.append(pd.DataFrame(rows, columns=COLUMNS).assign(
                tree="branch" if "/wt-" in tree else "main", round=int(rnd)))
    runs = pd.concat(frames)
    for c in ["gm_mle_s", "sk_s", "gm_map_s", "mc_mle_s", "mc_map_s"]:
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    return runs


def combine(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: each tree's minimum over its runs, mclust's and sklearn's over all runs, and the ratios."""
    key = ["data", "K", "type"]
    mc = runs.groupby(key)[["mc_mle_s", "mc_map_s"]].min()
    gm = runs.groupby(key + ["tree"])[["gm_mle_s", "gm_map_s", "sk_s"]].min().unstack("tree")
    out = pd.DataFrame({
        "main mle": gm[("gm_mle_s", "main")], "branch mle": gm[("gm_mle_s", "branch")],
        "main map": gm[("gm_map_s", "main")], "branch map": gm[("gm_map_s", "branch")],
        "mclust mle": mc["mc_mle_s"], "mclust map": mc["mc_map_s"],
        "sk": gm[("sk_s", "branch")].combine(gm[("sk_s", "main")], min)})
    for kind in ("mle", "map"):
        out[f"branch/main {kind}"] = out[f"branch {kind}"] / out[f"main {kind}"]
    for t in ("main", "branch"):
        for kind in ("mle", "map"):
            out[f"{t}/mc {kind}"] = out[f"{t} {kind}"] / out[f"mclust {kind}"]
        out[f"{t}/sk"] = out[f"{t} mle"] / out["sk"]
    out = out.reset_index()
    out["K"] = out["K"].astype(int)
    order = {"faithful": 0, "iris": 1}
    return out.sort_values(["data", "K"], key=lambda s: s.map(order) if s.name == "data" else s, kind="stable")


def main(path: str) -> None:
    table = combine(read_runs(path))
    pd.set_option("display.width", 250)
    print("per cell: each tree's minimum over its runs (seconds); mclust and sklearn: minimum over all runs")
    print(table.round(4).to_string(index=False))
    print()
    for col, target in TARGETS:
        r = table[col].dropna()
        extra = f"; {int((r <= target).sum())} of {len(r)} cells <= {target}x" if target else ""
        print(f"{col:>16}: geometric mean {np.exp(np.log(r).mean()):.2f}x, median {r.median():.2f}x, "
              f"max {r.max():.2f}x{extra}")


if __name__ == "__main__":
    main(sys.argv[1])
