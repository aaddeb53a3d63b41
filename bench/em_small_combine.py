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
import re, sys, numpy as np, pandas as pd
text = open(sys.argv[1]).read()
blocks = re.split(r"^=== round (\d) tree (\S+) .*$", text, flags=re.M)
frames = []
for i in range(1, len(blocks) - 1, 3):
    rnd, tree, body = blocks[i], blocks[i + 1], blocks[i + 2]
    lines = [l for l in body.splitlines() if re.match(r"^\s*(faithful|iris)\s", l)]
    if not lines:
        continue
    rows = [l.split() for l in lines]
    df = pd.DataFrame(rows, columns=["data", "K", "type", "gm_mle_s", "iters", "sk_s", "gm_map_s", "mc_mle_s", "mc_map_s",
                                     "gm/sk", "gm/mc mle", "gm/mc map"])
    df["tree"] = "branch" if "/wt-" in tree else "main"
    df["round"] = int(rnd)
    frames.append(df)
df = pd.concat(frames)
for c in ["gm_mle_s", "sk_s", "gm_map_s", "mc_mle_s", "mc_map_s"]:
    df[c] = pd.to_numeric(df[c], errors="coerce")
key = ["data", "K", "type"]
mc = df.groupby(key)[["mc_mle_s", "mc_map_s"]].min()
g = df.groupby(key + ["tree"])[["gm_mle_s", "gm_map_s", "sk_s"]].min().unstack("tree")
out = pd.DataFrame({
    "main mle": g[("gm_mle_s", "main")], "branch mle": g[("gm_mle_s", "branch")],
    "main map": g[("gm_map_s", "main")], "branch map": g[("gm_map_s", "branch")],
    "mclust mle": mc["mc_mle_s"], "mclust map": mc["mc_map_s"],
    "sk": g[("sk_s", "branch")].combine(g[("sk_s", "main")], min)})
out["branch/main mle"] = out["branch mle"] / out["main mle"]
out["branch/main map"] = out["branch map"] / out["main map"]
for t in ("main", "branch"):
    out[f"{t}/mc mle"] = out[f"{t} mle"] / out["mclust mle"]
    out[f"{t}/mc map"] = out[f"{t} map"] / out["mclust map"]
    out[f"{t}/sk"] = out[f"{t} mle"] / out["sk"]
out = out.reset_index()
out["K"] = out["K"].astype(int)
out = out.sort_values(["data", "K"], key=lambda s: s if s.name != "data" else s.map({"faithful": 0, "iris": 1}), kind="stable")
pd.set_option("display.width", 250)
print("per cell: each tree's minimum over its runs (seconds); mclust and sklearn: minimum over all runs")
print(out.round(4).to_string(index=False))
print()
gm = lambda s: float(np.exp(np.log(s.dropna()).mean()))
for col, target in (("branch/main mle", None), ("branch/main map", None), ("main/mc mle", 1.0), ("branch/mc mle", 1.0),
                    ("main/mc map", 1.0), ("branch/mc map", 1.0), ("main/sk", 0.3), ("branch/sk", 0.3)):
    r = out[col].dropna()
    extra = f"; {int((r <= target).sum())} of {len(r)} cells <= {target}x" if target else ""
    print(f"{col:>16}: geometric mean {gm(r):.2f}x, median {r.median():.2f}x, max {r.max():.2f}x{extra}")
