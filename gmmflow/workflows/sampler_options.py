"""The settings of a posterior sampling run, declared once.

``sample_posterior``, ``select_components(mcmc=True)``, ``run`` and the CLI
all take these as keyword arguments (``draws=``, ``tune=``, ...) and check
them here; the CLI builds its ``--draws`` ... flags from :data:`OPTION_HELP`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from gmmflow import defaults
from gmmflow.checks import check_int

SAMPLERS = ("auto", "pymc", "nutpie", "numpyro", "gibbs")
INITS = ("em", "restarts")  # sample_posterior(init=...): where the chains start

OPTION_HELP = {
    "draws": f"posterior draws per chain after tuning (default {defaults.DRAWS})",
    "tune": f"tuning (warm-up) steps per chain, discarded (default {defaults.TUNE})",
    "chains": f"independent chains, each started at the EM estimate plus jitter (default {defaults.CHAINS})",
    "sampler": "'auto' (NUTS: the first installed of numpyro, nutpie, pymc), 'numpyro', 'nutpie' or 'pymc' "
               "(NUTS), or 'gibbs' (conjugate Gibbs sampler on the EM kernels: large and chunked data)",
    "progressbar": "show a progress bar while sampling",
}


def check_sampler_name(sampler) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}; got {sampler!r}.")
    return sampler


@dataclass(frozen=True)
class SamplerOptions:
    """Posterior sampling settings (checked on construction).

    Parameters
    ----------
    draws : int, default 1000
        Draws per chain kept after tuning.
    tune : int, default 1000
        Tuning steps per chain (discarded).
    chains : int, default 4
        Independent chains; r_hat needs at least 4 to be reliable.
    sampler : {"auto", "numpyro", "nutpie", "pymc", "gibbs"}, default "auto"
        ``"auto"``: the first installed of numpyro (JAX), nutpie (numba) and
        PyMC's own NUTS, the order ``bench/mcmc_backends.py`` measured.
        ``"gibbs"``: the conjugate blocked Gibbs sampler (``tune`` sweeps are
        discarded as burn-in).
    progressbar : bool, default True
    """

    draws: int = defaults.DRAWS
    tune: int = defaults.TUNE
    chains: int = defaults.CHAINS
    sampler: str = "auto"
    progressbar: bool = True

    def __post_init__(self):
        object.__setattr__(self, "draws", check_int(self.draws, "draws", 1))
        object.__setattr__(self, "chains", check_int(self.chains, "chains", 1))
        object.__setattr__(self, "tune", check_int(self.tune, "tune", 0))
        check_sampler_name(self.sampler)
        object.__setattr__(self, "progressbar", bool(self.progressbar))

    @classmethod
    def from_kwargs(cls, caller: str, options: dict) -> SamplerOptions:
        """Options given to ``caller`` as keyword arguments; unknown names are refused."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(f"{caller}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                            f"its sampling options are {', '.join(names)}.")
        return cls(**options)

    def with_sampler(self, sampler: str) -> SamplerOptions:
        return SamplerOptions(self.draws, self.tune, self.chains, sampler, self.progressbar)
