"""ArviZ's posterior plots (trace, rank, pair, predictive check) with the EM estimate as reference."""

from __future__ import annotations

import arviz as az
import numpy as np

from gmmflow import schema as S
from gmmflow.plots.registry import register


def _check_vars(var_names) -> list[str]:
    var_names = [var_names] if isinstance(var_names, str) else list(var_names)
    unknown = [v for v in var_names if v not in S.PARAMETERS]
    if unknown:
        raise ValueError(f"var_names must be drawn from 'w', 'mu', 'cov'; got {unknown}.")
    return var_names


def em_reference_lines(idata, var_names, coords=None) -> list[tuple]:
    """``(var, selection, value)`` for every entry of the EM estimate (ArviZ's ``lines``), in C order."""
    est = idata[S.EM_ESTIMATE]
    lines = []
    for var in var_names:
        da = est[var].sel({k: v for k, v in (coords or {}).items() if k in est[var].dims})
        for index in np.ndindex(da.shape):
            sel = {dim: da[dim].values[i].item() for dim, i in zip(da.dims, index)}
            lines.append((var, sel, float(da.values[index])))
    return lines


@register("rank", order=50, needs=(S.POSTERIOR,), kwargs={"kind": "rank_bars"},
          caption="Rank plots: how each chain's draws rank among all chains' draws. Look for roughly flat bars in "
                  "every chain. A chain whose bars slope or pile up at one end explored another region than the "
                  "others (r_hat sees the same).")
@register("trace", order=40, needs=(S.POSTERIOR,),
          caption="Posterior draws of the weights and means, chain by chain, relabelled to EM's components, with "
                  "EM's MAP as grey reference lines. Look for chains that overlap like noise around one level. A "
                  "trend, a chain at another level, or jumps between levels mean the sampler has not converged or "
                  "labels switched.")
def plot_trace(idata, var_names=("w", "mu"), *, kind: str = "trace", **kwargs):
    """ArviZ trace (or rank) plot of the relabelled posterior, EM estimate as reference lines.

    ``kind``: ``"trace"``, ``"rank_bars"`` or ``"rank_vlines"``. The EM
    values are vertical lines on the marginal densities (left column) and,
    for ``"trace"``, horizontal lines on the traces.
    """
    S.require_groups(idata, S.POSTERIOR, S.EM_ESTIMATE, hint=S.HINTS[S.POSTERIOR])
    var_names = _check_vars(var_names)
    if kind not in ("trace", "rank_bars", "rank_vlines"):
        raise ValueError(f"kind must be 'trace', 'rank_bars' or 'rank_vlines'; got {kind!r}.")
    lines = em_reference_lines(idata, var_names, kwargs.get("coords"))
    if kind == "trace":
        axes = az.plot_trace(idata, var_names=var_names, kind=kind, compact=False, lines=lines, **kwargs)
    else:  # ArviZ would draw the lines across the rank axes too, where a value has no meaning
        axes = az.plot_trace(idata, var_names=var_names, kind=kind, compact=False, **kwargs)
        for row, (_, _, value) in zip(axes, lines):  # rows follow the variables' C order, as `lines` does
            row[0].axvline(value, color="0.35", gid="em-reference")
    fig = axes.flat[0].figure
    fig.set_size_inches(11, 1.9 * axes.shape[0])
    fig.tight_layout()
    return axes


@register("pair", order=60, needs=(S.POSTERIOR,),
          caption="Posterior draws of every pair of weights and means, EM's MAP marked by a red cross. Look for one "
                  "compact cloud around each cross. An elongated cloud shows two parameters the data cannot tell "
                  "apart; separate clouds show several modes that one interval per parameter hides.")
def plot_pair(idata, var_names=("w", "mu"), *, coords=None, kind: str = "scatter", **kwargs):
    """ArviZ pair plot of the posterior with the EM estimate marked (red crosses)."""
    S.require_groups(idata, S.POSTERIOR, S.EM_ESTIMATE, hint=S.HINTS[S.POSTERIOR])
    var_names = _check_vars(var_names)
    est = idata[S.EM_ESTIMATE]
    reference = {v: (est[v].sel(coords) if coords else est[v]).values for v in var_names}
    kwargs.setdefault("figsize", _pair_figsize(sum(value.size for value in reference.values())))
    kwargs.setdefault("scatter_kwargs", {"alpha": 0.35, "s": 8})
    kwargs.setdefault("reference_values_kwargs", {"color": "C3", "marker": "X", "markersize": 9})
    return az.plot_pair(idata, var_names=var_names, coords=coords, kind=kind,
                        reference_values=reference, **kwargs)


def _pair_figsize(n_scalars: int) -> tuple[float, float]:
    """Inches for a pair plot of ``n_scalars`` scalar parameters: 2.8 in per panel up to 14 in wide,
    then 1.2 in per panel.

    ArviZ's own default grows faster with the number of panels and its text
    size (37 x 28 in for Faithful's six scalars), which made the largest and
    slowest PNG of a report.
    """
    panels = max(1, n_scalars - 1)
    width = min(2.8 * panels + 0.8, max(14.0, 1.2 * panels))
    return width, 0.75 * width


@register("ppc", order=90, needs=(S.POSTERIOR_PREDICTIVE,),
          caption="Posterior predictive check, one panel per feature: the data's density (dark) among the densities "
                  "of data sets replicated from the posterior. Look for the dark line inside the bundle; where it "
                  "leaves the bundle (a peak, a tail) the model does not reproduce the data.")
def plot_ppc(idata, *, num_pp_samples: int = 100, seed: int = 0, **kwargs):
    """ArviZ posterior predictive check, one panel per feature (observations pooled).

    At most ``num_pp_samples`` replicate data sets (no more than there are draws).
    """
    S.require_groups(idata, S.POSTERIOR_PREDICTIVE, S.OBSERVED_DATA, hint=S.HINTS[S.POSTERIOR_PREDICTIVE])
    pp = idata[S.POSTERIOR_PREDICTIVE]
    num_pp_samples = min(num_pp_samples, pp.sizes[S.CHAIN] * pp.sizes[S.DRAW])
    return az.plot_ppc(idata, flatten=[S.OBS], num_pp_samples=num_pp_samples, random_seed=seed, **kwargs)
