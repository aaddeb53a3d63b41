"""Two exact samplers, one posterior: Gibbs and NUTS agree on real data (slow tier).

Each case samples the same model and data, from the same EM start and
hyper-parameters, with NUTS (``sampler="auto"``) and with the Gibbs sampler,
both 4 chains and both relabelled to the same EM pivot. For every free
parameter (weights, means, the covariance entries the type leaves free) the
posterior means and the 5%, 50% and 95% quantiles must agree within
Monte-Carlo error: ``z = |Gibbs - NUTS| / sqrt(MCSE_Gibbs^2 + MCSE_NUTS^2)``
with ArviZ's MCSE (``az.mcse``, method "mean" and "quantile") of each
sampler's own relabelled draws. Both runs must also pass their own
diagnostics (``sampling_status == "ok"``: r_hat <= 1.01, bulk and tail ESS
>= 400 for every parameter), so no comparison rests on an MCSE from a few
effective draws.

Draws per case: enough that each sampler's worst bulk and tail ESS clear
the status check's 400 with a margin (bulk ESS measured with seeds 11/12
and 21/22: Faithful >= 2627 Gibbs, 5727 NUTS; iris diag >= 924 / 877;
iris tied >= 2407 / 2315; galaxies K=3 >= 1346 / 1248), and not more:
about 2 minutes of CPU in all. Gibbs sweeps are cheap, but on iris Gibbs
mixes more slowly per draw than NUTS (the two overlapping species trade
rows one at a time: bulk ESS about 200 per 4 x 2,000 draws for their
parameters, NUTS about 600 per 4 x 1,000), so iris gets 7 to 10 times more
Gibbs draws; iris tied's NUTS needs 4 x 2,500 for its tail ESS (380 at
4 x 1,500 with seed 21).

Thresholds and error rate: the four cases hold 73 free parameters, so 73
mean comparisons at the issue's |z| < 4 (two-sided tail 6.3e-5 each, 4.6e-3
for the family) and 219 quantile comparisons at |z| < 4.6 (Bonferroni for a
family rate of 1e-3: 1e-3 / 219 gives |z| 4.58; 4.6 gives 4.2e-6 each, 9.3e-4
for the family). So with exact MCSEs the test fails with probability at
most 4.6e-3 + 9.3e-4 = 0.55% if both samplers are exact (less: comparisons
within a case are positively correlated, w[0] and w[1] of K=2 perfectly, and
Bonferroni is then conservative); the MCSEs are estimates, so read that as
an order of magnitude. The seeds are fixed, so the outcome is reproducible;
another seed can also fail the status check, most likely NUTS's on galaxies
K=3, whose rare excursions of the high-velocity component towards the
centre give NUTS about 2e-4 divergences per draw (8 in 4 x 10,000 with seed
21, none with seed 11).

Galaxies K=4 (issue 12 lists it) is not here but in ``bench/gibbs_exactness.py``
(run by hand), because it cannot be made reliable in the slow tier's budget.
Its posterior has a minor mode (a few per cent of the mass) in which the
small high-velocity component leaves the 3 fastest galaxies for the broad
centre (mean below 2 sd, variance near 1), and both samplers cross into it
and back rarely, NUTS more rarely than Gibbs. Measured on this machine
(load average 8 to 12, 2 cores), seed 11: at NUTS 4 x 1000 / Gibbs 4 x
2000, max r_hat NUTS 1.19 and Gibbs 1.04 (w, mu and cov of that component
and of the broad one; bulk ESS 15 and 183); at 4 x 4000 / 4 x 20000 NUTS
still fails r_hat (one chain 12% in the minor mode, the others under 1%);
at 4 x 10,000 / 4 x 40,000 (156 s CPU for K=4 alone) Gibbs passes every
check (r_hat <= 1.001, bulk ESS >= 2117), NUTS has r_hat <= 1.005 but
fails its divergence and tail-ESS checks, and the comparison passes (max
|z| 2.14 for the means, 3.46 for the quantiles). See
``bench/results/gibbs_exactness_galaxies4_2026-11-26.txt``.
"""

import resource
import time

import numpy as np
import pytest

import arviz as az
import gmmflow

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

CHAINS = 4
CASES = {  # name: (dataset, K, covariance type, NUTS draws per chain, Gibbs draws per chain)
    "faithful K=2 full": ("faithful", 2, "full", 1000, 1000),
    "iris K=3 diag": ("iris", 3, "diag", 1500, 10000),
    "iris K=3 tied": ("iris", 3, "tied", 2500, 12000),
    "galaxies K=3": ("galaxies", 3, "full", 1000, 1000),
}
Z_MEAN = 4.0  # issue 12's threshold for the means
Z_QUANTILE = 4.6  # Bonferroni over the 219 quantile comparisons at 1e-3 (module docstring)
QUANTILES = (0.05, 0.5, 0.95)
NUTS_SEED, GIBBS_SEED = 11, 12


def standardised(name):
    X = gmmflow.load_dataset(name)
    return (X - X.mean("obs_id")) / X.std("obs_id")


def free_entries(idata, t):
    """{label: (chain, draw) array} of every free parameter of a posterior."""
    post = idata.posterior
    K, d = post.sizes["component"], post.sizes["feature"]
    out = {f"w[{k}]": post.w.values[:, :, k] for k in range(K)}
    out |= {f"mu[{k},{j}]": post.mu.values[:, :, k, j] for k in range(K) for j in range(d)}
    cov = post["cov"].values
    for k in range(1 if t == "tied" else K):
        for i, j in covariance_indices(t, d):
            out[f"cov[{k},{i},{j}]"] = cov[:, :, k, i, j]
    return out


def covariance_indices(t, d):
    """The (row, column) entries a covariance type leaves free: lower triangle, diagonal, or one variance."""
    if t in ("full", "tied"):
        return [(i, j) for i in range(d) for j in range(i + 1)]
    return [(i, i) for i in range(d)] if t == "diag" else [(0, 0)]


def mcse(draws, method, prob=None):
    """ArviZ's MCSE of one parameter's (chain, draw) array, as a float."""
    kwargs = {"prob": prob} if prob is not None else {}
    return np.asarray(az.mcse(draws, method=method, **kwargs)).item()  # "mean" gives shape (1,): float() refuses


def z_scores(ours, theirs):
    """[(|z|, what)] for the mean and each quantile of every parameter: difference / combined MCSE."""
    out = []
    for label, g in ours.items():
        n = theirs[label]
        out.append((abs(g.mean() - n.mean()) / np.hypot(mcse(g, "mean"), mcse(n, "mean")), f"{label} mean"))
        out += [(abs(np.quantile(g, q) - np.quantile(n, q)) / np.hypot(mcse(g, "quantile", q), mcse(n, "quantile", q)),
                 f"{label} q{q:g}") for q in QUANTILES]
    return out


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = run()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def sample_both(case, nuts_seed=NUTS_SEED, gibbs_seed=GIBBS_SEED):
    """The NUTS and Gibbs posteriors of a case (Gibbs from NUTS's EM start), with wall and CPU seconds."""
    data, K, t, nuts_draws, gibbs_draws = CASES[case]
    X, model = standardised(data), gmmflow.GMM(K, t)
    nuts, *nuts_time = timed(lambda: gmmflow.sample_posterior(
        model, X, seed=nuts_seed, sampler="auto", draws=nuts_draws, tune=1000, chains=CHAINS, progressbar=False))
    gibbs, *gibbs_time = timed(lambda: gmmflow.sample_posterior(
        model, X, em=nuts, seed=gibbs_seed, sampler="gibbs", draws=gibbs_draws, tune=200, chains=CHAINS,
        progressbar=False))
    return nuts, gibbs, nuts_time, gibbs_time


def min_ess(entries):
    return min(float(az.ess(a)) for a in entries.values())


def test_free_entries_lists_each_free_covariance_entry_once():
    """The labels compared per covariance type: the lower triangle (full, tied once), the diagonal, one."""
    d, K = 3, 2
    post = az.from_dict(posterior={"w": np.ones((1, 2, K)), "mu": np.zeros((1, 2, K, d)),
                                   "cov": np.zeros((1, 2, K, d, d))},
                        dims={"w": ["component"], "mu": ["component", "feature"],
                              "cov": ["component", "feature", "feature_bis"]})
    cov_labels = {t: [k for k in free_entries(post, t) if k.startswith("cov")] for t in ("full", "tied", "diag",
                                                                                          "spherical")}
    assert cov_labels["full"] == [f"cov[{k},{i},{j}]" for k in range(K) for i in range(d) for j in range(i + 1)]
    assert cov_labels["tied"] == [f"cov[0,{i},{j}]" for i in range(d) for j in range(i + 1)]
    assert cov_labels["diag"] == [f"cov[{k},{i},{i}]" for k in range(K) for i in range(d)]
    assert cov_labels["spherical"] == [f"cov[{k},0,0]" for k in range(K)]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_gibbs_and_nuts_sample_the_same_posterior(case):
    nuts, gibbs, nuts_time, gibbs_time = sample_both(case)
    status = {"Gibbs": gibbs.attrs["sampling_status"], "NUTS": nuts.attrs["sampling_status"]}
    assert set(status.values()) == {"ok"}, status
    t = CASES[case][2]
    ours, theirs = free_entries(gibbs, t), free_entries(nuts, t)
    means = sorted((z for z in z_scores(ours, theirs) if z[1].endswith("mean")), reverse=True)
    quantiles = sorted((z for z in z_scores(ours, theirs) if not z[1].endswith("mean")), reverse=True)
    print(f"\n{case}: {len(ours)} parameters; max |z| mean {means[0][0]:.2f} ({means[0][1]}), quantile "
          f"{quantiles[0][0]:.2f} ({quantiles[0][1]}); min bulk ESS Gibbs {min_ess(ours):.0f}, NUTS "
          f"{min_ess(theirs):.0f}; NUTS {nuts_time[0]:.1f} s wall / {nuts_time[1]:.1f} s CPU, Gibbs "
          f"{gibbs_time[0]:.1f} s / {gibbs_time[1]:.1f} s")
    assert means[0][0] < Z_MEAN, means[:5]
    assert quantiles[0][0] < Z_QUANTILE, quantiles[:5]
