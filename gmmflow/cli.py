"""Command line: argument parsing only; every command calls one workflow.

``main(argv=None) -> int``: 0 on success, 2 on bad input or a failed run,
130 on Ctrl-C, 143 on SIGTERM; errors as one line on stderr (the traceback
only with ``--debug``), warnings as one line each and nothing from other
packages (``console.session``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gmmflow import defaults
from gmmflow import schema as S
from gmmflow._version import __version__
from gmmflow.checks import MISSING_OPTIONS, SEED_LIMIT, summarize_value, summarize_values
from gmmflow.console import Stopped, session
from gmmflow.core.gaussian import COVARIANCE_TYPES
from gmmflow.workflows.sampler_options import INITS, OPTION_HELP, SAMPLERS

EXAMPLES = {
    "em": """examples:
  gmmflow em --data faithful --k 2 --out faithful_em.nc
  gmmflow em --data iris --k 3 --covariance diag --no-prior --n-init 10 --seed 0 --out iris.nc
  gmmflow em --data measurements.csv --columns height,weight --k 2 --out fit.nc
  gmmflow em --data faithful --k 2 --noise --out faithful_noise.nc   # plus a uniform noise component
""",
    "run": """examples:
  gmmflow run                                   # Old Faithful, K=2, into results/faithful
  gmmflow run --data galaxies --k 1:5 --seed 0 --out results/galaxies
  gmmflow run --data iris --k 3 --covariance diag --draws 500 --out results/iris --overwrite
  gmmflow run --data measurements.csv --columns height,weight --k 2 --out results/measurements
""",
    "report": """examples:
  gmmflow report results/faithful/run.nc --out faithful_report
  gmmflow report faithful_run.nc --out report --overwrite
""",
    "clean": """examples:
  gmmflow clean results          # remove what killed runs left in results/
  gmmflow clean .
""",
    "sample": """examples:
  gmmflow sample --data faithful --k 2 --seed 0 --out faithful_run.nc
  gmmflow sample --data galaxies --k 3 --chains 4 --draws 2000 --sampler pymc --out galaxies.nc
  gmmflow sample --data big.zarr --k 8 --sampler gibbs --tune 200 --draws 500 --out big_posterior.nc
""",
}


class CLIError(Exception):
    """A user error found while parsing; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (no usage block)."""

    def error(self, message):
        raise CLIError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {summarize_value(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


SEED_HELP = "a whole number from 0 to 2**64 - 1 (default: one is drawn and recorded in the result)"


def _seed(text: str) -> int:
    """``--seed``: a whole number in [0, 2**64), checked while parsing (before any work)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {summarize_value(text)}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**64 - 1 = {SEED_LIMIT - 1}, got "
                                         f"{summarize_value(value)}")
    return value


def k_range(text: str) -> range:
    """``--k``: one number (``2``) or an inclusive range (``1:6``), kept as a ``range``.

    Never materialised here: ``1:1000000000`` costs nothing until the grid is
    bounded by the number of rows of the data (``check_ks``).
    """
    parts = text.split(":")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"expected K or LOW:HIGH such as 1:6, got {summarize_value(text)}")
    low, high = (_positive_int(p) for p in (parts[0], parts[-1]))
    if low > high:
        raise argparse.ArgumentTypeError(f"the range {text!r} is empty; write LOW:HIGH with LOW <= HIGH, e.g. "
                                         f"{high}:{low}")
    return range(low, high + 1)


def _columns(text: str) -> list[str]:
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise argparse.ArgumentTypeError("give column names separated by commas, e.g. a,b")
    return cols


def _separator(text: str) -> str:
    """``--sep``: one character, or ``tab`` / ``whitespace`` (also ``\\t`` and ``\\s+``)."""
    named = {"tab": "\t", "\\t": "\t", "whitespace": r"\s+", r"\s+": r"\s+"}
    if text in named:
        return named[text]
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character such as ';', or 'tab' or 'whitespace', got "
                                         f"{summarize_value(text)}")
    return text


def _add_data_args(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--data", default=default, required=default is None,
                   help="a bundled dataset name (faithful, geyser, galaxies, iris, blobs), a CSV file "
                        "(separator, decimal mark and header are detected; see --sep, --decimal, --no-header) "
                        "or a zarr store (a 2-D array; column names from its 'feature_names' attribute, else "
                        "x0, x1, ...; read chunk by chunk by em, and by sample with --sampler gibbs)")
    p.add_argument("--columns", type=_columns, default=None,
                   help="comma-separated columns to use, in this order (default: all; CSV files refuse index "
                        "and ID columns unless --columns chooses the columns)")
    p.add_argument("--sep", type=_separator, default=None,
                   help="CSV field separator: one character, 'tab' or 'whitespace' (default: detected)")
    p.add_argument("--decimal", choices=(".", ","), default=None, metavar="MARK",
                   help="CSV decimal mark, '.' or ',' (default: detected)")
    header = p.add_mutually_exclusive_group()
    header.add_argument("--no-header", dest="header", action="store_const", const=None, default="infer",
                        help="the CSV file has no header row (columns are then x0, x1, ...)")
    header.add_argument("--header", dest="header", action="store_const", const=0,
                        help="the first CSV line is the header even if it is all numbers")
    p.add_argument("--encoding", default="utf-8", help="CSV text encoding (default utf-8), e.g. latin-1")


def _csv_options(args) -> dict:
    return dict(sep=args.sep, decimal=args.decimal, header=args.header, encoding=args.encoding,
                missing=getattr(args, "missing", defaults.MISSING) == "marginalize")


def _add_missing_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--missing", default=defaults.MISSING, choices=MISSING_OPTIONS,
                   help="empty cells: 'error' refuses them, 'marginalize' fits on each row's observed values "
                        f"(default {defaults.MISSING})")


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="result file (netCDF, .nc)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (never an input, a FIFO or a device)")


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    """The sampling options (one declaration: ``SamplerOptions``); progress bars follow ``--quiet``."""
    p.add_argument("--chains", type=_positive_int, default=defaults.CHAINS, help=OPTION_HELP["chains"])
    p.add_argument("--draws", type=_positive_int, default=defaults.DRAWS, help=OPTION_HELP["draws"])
    p.add_argument("--tune", type=_positive_int, default=defaults.TUNE, help=OPTION_HELP["tune"])
    p.add_argument("--sampler", default="auto", choices=SAMPLERS, help=OPTION_HELP["sampler"])


def _sampling(args) -> dict:
    """Progress bars only on a terminal: in a log file they are noise."""
    return dict(draws=args.draws, tune=args.tune, chains=args.chains, sampler=args.sampler,
                progressbar=not args.quiet and sys.stderr.isatty())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gmmflow",
        description="Gaussian mixture models: EM (MAP/MLE), NUTS posterior, comparison.",
    )
    parser.add_argument("--version", action="version", version=f"gmmflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # also accepted after the command; SUPPRESS keeps a flag given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="print nothing on success")

    em = sub.add_parser("em", parents=[common], help="fit by EM (MAP, or MLE with --no-prior)",
                        epilog=EXAMPLES["em"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(em)
    em.add_argument("--k", type=_positive_int, required=True, help="number of components")
    em.add_argument("--covariance", default="full", choices=COVARIANCE_TYPES, help="covariance type")
    em.add_argument("--no-prior", action="store_true", help=f"MLE (no prior; reg_covar {defaults.REG_COVAR})")
    em.add_argument("--n-init", type=_positive_int, default=defaults.N_INIT,
                    help=f"restarts (default {defaults.N_INIT})")
    em.add_argument("--max-iter", type=_positive_int, default=defaults.MAX_ITER)
    em.add_argument("--tol", type=float, default=defaults.TOL)
    em.add_argument("--seed", type=_seed, default=None, help=SEED_HELP)
    em.add_argument("--chunks", type=_positive_int, default=None,
                    help="rows per chunk (zarr input: dask chunk size)")
    _add_missing_arg(em)
    _add_noise_args(em)
    _add_output_args(em)

    sm = sub.add_parser("sample", parents=[common],
                        help="sample the posterior with NUTS or Gibbs (started from EM)",
                        epilog=EXAMPLES["sample"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(sm)
    sm.add_argument("--k", type=_positive_int, required=True, help="number of components")
    sm.add_argument("--covariance", default="full", choices=COVARIANCE_TYPES)
    _add_sampler_args(sm)
    sm.add_argument("--seed", type=_seed, default=None, help=SEED_HELP)
    sm.add_argument("--posterior-predictive", action="store_true", help="store replicate data sets")
    sm.add_argument("--init", default="em", choices=INITS,
                    help="where the chains start: 'em' (the EM estimate, default) or 'restarts' (chain c at the "
                         "(c mod m)-th best of the m distinct EM restart optima; NUTS numpyro or pymc)")
    _add_missing_arg(sm)
    _add_noise_args(sm)
    _add_output_args(sm)

    rn = sub.add_parser("run", parents=[common], help="the main job: EM, NUTS, comparison, plots, report",
                        description="Fit by EM, sample the posterior with NUTS from the EM estimate, compare "
                                    "them, and write run.nc, the plots (PNG) and report.html into --out. "
                                    "With a K range every K is fitted and sampled and the best by "
                                    "--criterion is reported.",
                        epilog=EXAMPLES["run"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(rn, default="faithful")
    rn.add_argument("--k", type=k_range, default=range(2, 3), help="K or a range LOW:HIGH (default 2)")
    rn.add_argument("--covariance", default="full", choices=COVARIANCE_TYPES)
    rn.add_argument("--criterion", default="bic", choices=("bic", "icl", "loo"),
                    help="how a K range is decided (default bic)")
    rn.add_argument("--n-init", type=_positive_int, default=defaults.N_INIT,
                    help=f"EM restarts (default {defaults.N_INIT})")
    _add_sampler_args(rn)
    rn.add_argument("--seed", type=_seed, default=None, help=SEED_HELP)
    rn.add_argument("--out", type=Path, default=None,
                    help="output directory (default results/<data name>)")
    rn.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out directory (only one gmmflow wrote)")
    _add_missing_arg(rn)

    rp = sub.add_parser("report", parents=[common], help="plots and report.html of a saved result",
                        epilog=EXAMPLES["report"], formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("result", type=Path, help="a result file written by gmmflow (em, sample or run)")
    rp.add_argument("--out", type=Path, required=True, help="output directory for the PNGs and report.html")
    rp.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out directory (only one gmmflow wrote)")

    cl = sub.add_parser("clean", parents=[common], help="remove temporary files left by killed gmmflow runs",
                        description="Remove the temporary files and directories (.NAME.gmmflow-tmp-PID-XXXXXXXX) "
                                    "that gmmflow runs killed before they finished left in DIRECTORY; those "
                                    "of runs still alive are kept.",
                        epilog=EXAMPLES["clean"], formatter_class=argparse.RawDescriptionHelpFormatter)
    cl.add_argument("directory", type=Path, help="the directory to clean (not its subdirectories)")
    return parser


def _input_paths(spec: str) -> list[Path]:
    """The files ``--data`` names (none for a bundled dataset): no output may overlap them."""
    from gmmflow.inputs.datasets import DATASETS

    return [] if spec in DATASETS else [Path(spec)]


def _check_out(path: Path, overwrite: bool, inputs: list[Path]) -> None:
    from gmmflow.results.files import check_destination

    check_destination(path, overwrite, inputs, overwrite_hint="--overwrite")


def load_data(spec: str, columns=None, chunks=None, in_memory: bool = True, **csv_options):
    """Resolve ``--data``: a bundled name, a CSV file or a zarr store, with ``--columns`` applied.

    A zarr store becomes a dask-backed DataArray (its column names from the
    store's ``feature_names`` attribute, else x0, x1, ...), read into memory
    when ``in_memory`` (``run``, and ``sample`` with NUTS) after a memory check.
    """
    from gmmflow.inputs.csv_reader import read_csv
    from gmmflow.inputs.datasets import DATASETS, load_dataset

    if spec in DATASETS:
        data = load_dataset(spec)
        if columns:
            features = [str(f) for f in data[S.FEATURE].values]
            missing = [c for c in columns if c not in features]
            if missing:
                raise CLIError(f"dataset {spec!r} has no column(s) {summarize_values(missing)}; its columns are "
                               f"{features}.")
            data = data.sel({S.FEATURE: columns})
        return data
    path = Path(spec)
    if path.suffix == ".zarr" or (path.is_dir() and (path / "zarr.json").exists()):
        return _zarr_data(path, columns, chunks, in_memory)
    if not path.exists():
        raise CLIError(
            f"--data {spec!r} is neither a bundled dataset ({', '.join(sorted(DATASETS))}) "
            "nor an existing file."
        )
    return read_csv(path, columns, **csv_options)


def _zarr_data(path: Path, columns, chunks, in_memory: bool):
    import xarray as xr

    from gmmflow.inputs.chunked import open_zarr
    from gmmflow.inputs.matrix import PATH_ATTR
    from gmmflow.resources import FLOAT, check_memory

    values, names, named = open_zarr(path, chunks=chunks, columns=columns)
    if in_memory:
        n, d = values.shape
        check_memory(2 * FLOAT * n * d, f"reading {path} ({n} x {d}) into memory",
                     ("sample (NUTS) and run need the data in memory; fit it chunk by chunk with gmmflow em, or "
                      "sample it chunk by chunk with gmmflow sample --sampler gibbs"))
        values = values.compute()
    coords = {S.FEATURE: names} if named else {}
    return xr.DataArray(values, dims=(S.OBS, S.FEATURE), coords=coords, attrs={PATH_ATTR: str(path)})


def _add_noise_args(p) -> None:
    p.add_argument("--noise", action="store_true",
                   help="add mclust's uniform noise component (outliers, background; labelled -1)")
    p.add_argument("--noise-volume", type=float, default=None, metavar="V",
                   help="volume of the noise's region (default: the data's hypervolume, as mclust)")


def _noise_options(args) -> dict:
    """GMM keyword arguments of --noise / --noise-volume."""
    return dict(noise=args.noise, noise_volume=args.noise_volume)


def _print_em_summary(idata) -> None:
    est = idata[S.EM_ESTIMATE]
    print(f"objective      {float(est['objective']):.6f}")
    print(f"log-likelihood {float(est['log_likelihood']):.6f}")
    print(f"iterations     {int(est['n_iter'])}  converged: {bool(est['converged'])}")
    feats = ", ".join(str(f) for f in est[S.FEATURE].values)
    print(f"component  weight   mean ({feats})")
    for k, (w, mu) in enumerate(zip(est["w"].values, est["mu"].values)):
        print(f"{k:>9}  {w:.4f}   [{', '.join(f'{v:.4g}' for v in mu)}]")
    if S.NOISE_WEIGHT in est:
        log_volume = idata.attrs[S.NOISE_LOG_VOLUME_ATTR]
        print(f"{'noise':>9}  {float(est[S.NOISE_WEIGHT]):.4f}   uniform, log volume {log_volume:.4g}")


def cmd_em(args) -> None:
    from gmmflow.models.spec import GMM
    from gmmflow.results.files import save
    from gmmflow.workflows.em_fit import fit_em

    model = GMM(args.k, args.covariance, prior=None if args.no_prior else "default", **_noise_options(args))
    inputs = _input_paths(args.data)
    _check_out(args.out, args.overwrite, inputs)
    X = load_data(args.data, args.columns, args.chunks, in_memory=False, **_csv_options(args))
    idata = fit_em(model, X, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                   seed=args.seed, chunk_size=args.chunks, missing=args.missing)
    save(idata, args.out, overwrite=args.overwrite, inputs=inputs)
    if not args.quiet:
        _print_em_summary(idata)
        print(f"wrote {args.out}")


def cmd_sample(args) -> None:
    from gmmflow.exceptions import SamplingError
    from gmmflow.models.spec import GMM
    from gmmflow.results.files import result_file_bytes, save
    from gmmflow.results.placement import check_free_space
    from gmmflow.inputs.chunked import is_chunked
    from gmmflow.workflows.diagnostics import diagnose
    from gmmflow.workflows.gibbs_sampling import GIBBS, pointwise_size
    from gmmflow.workflows.posterior_sampling import sample_posterior

    model = GMM(args.k, args.covariance, **_noise_options(args))
    inputs = _input_paths(args.data)
    _check_out(args.out, args.overwrite, inputs)
    gibbs = args.sampler == GIBBS  # reads a zarr store chunk by chunk, keeps thinned pointwise groups
    X = load_data(args.data, args.columns, in_memory=not gibbs, **_csv_options(args))
    n, d = X.shape
    rows, draws_total = pointwise_size(n, d, is_chunked(X), args.chains, args.draws, args.posterior_predictive) \
        if gibbs else (n, args.chains * args.draws)
    check_free_space(args.out.resolve().parent, result_file_bytes(
        rows, d, draws_total, args.posterior_predictive), str(args.out))
    try:
        idata = sample_posterior(model, X, seed=args.seed,
                                 posterior_predictive=args.posterior_predictive, missing=args.missing,
                                 init=args.init, **_sampling(args))
    except SamplingError as err:  # keep what was computed: the EM result, marked as such
        save(err.partial, args.out, overwrite=args.overwrite, inputs=inputs)
        raise SamplingError(f"{err} Wrote the EM result only to {args.out}.") from err
    save(idata, args.out, overwrite=args.overwrite, inputs=inputs)
    if not args.quiet:
        print(diagnose(idata).to_string())
        print(f"wrote {args.out}")


def _check_out_dir(path: Path, overwrite: bool, inputs: list[Path]) -> None:
    from gmmflow.results.files import check_output_directory

    check_output_directory(path, overwrite, inputs, overwrite_hint="--overwrite")


def cmd_run(args) -> None:
    from gmmflow.main_job import run
    from gmmflow.workflows.diagnostics import diagnose

    out = args.out if args.out is not None else Path("results") / Path(args.data).stem
    inputs = _input_paths(args.data)
    _check_out_dir(out, args.overwrite, inputs)
    X = load_data(args.data, args.columns, **_csv_options(args))
    idata, table = run(X, out, ks=args.k, covariance_type=args.covariance, criterion=args.criterion,
                       n_init=args.n_init, seed=args.seed, overwrite=args.overwrite, inputs=inputs,
                       missing=args.missing, **_sampling(args))
    if not args.quiet:
        if table is not None:
            shown = ["covariance_type", "k", "status", "bic", "icl"] + \
                    [c for c in ("elpd_loo", "elpd_loo_se") if c in table]
            print(table[shown].to_string(index=False))
            print(f"chosen by {args.criterion}: K = {int(idata.attrs['n_components'])}")
        print(diagnose(idata).to_string())
        print(f"wrote {out}/run.nc, {out}/report.html and the plots")


def cmd_report(args) -> None:
    from gmmflow.report.page import write_report

    _check_out_dir(args.out, args.overwrite, [args.result])
    page = write_report(args.result, args.out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {page}")


def cmd_clean(args) -> None:
    from gmmflow.results.placement import remove_debris

    if not args.directory.is_dir():
        raise NotADirectoryError(f"{args.directory} is not a directory; give the directory to clean.")
    removed = remove_debris(args.directory)
    if not args.quiet:
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print(f"nothing to clean in {args.directory}")


COMMANDS = {"em": cmd_em, "sample": cmd_sample, "run": cmd_run, "report": cmd_report, "clean": cmd_clean}
WRITES_REPORT = ("run", "report")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except CLIError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with session(debug=args.debug, report=args.command in WRITES_REPORT):
            COMMANDS[args.command](args)
    except Stopped as stop:  # SIGTERM / SIGINT: the clean-ups have run on the way out
        print(stop.message, file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # raised by a library rather than by the signal
        print("gmmflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line per error unless --debug
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"gmmflow {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
