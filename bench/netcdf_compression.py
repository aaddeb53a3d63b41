"""Result-file compression: size and write/read time for zlib levels 1..9 against uncompressed.

Reads a result (default: ``results/faithful/run.nc``, what ``gmmflow run
--seed 0`` writes) and, for each setting, builds the netCDF file in memory
(``files.netcdf_bytes``), saves it (build, then ``placement.write_bytes``:
write, fsync, rename), reads it back with ``gmmflow.load`` and with
``arviz.from_netcdf``. Level 0
(no compression) is the baseline, measured in the same run; each timing is
the median of ``--repeat`` runs, printed with its ratio to the baseline.
Also prints, per group, the compressed-to-raw ratio at the chosen level (the
figure ``files.result_file_bytes`` uses as its lower bound), and the peak
memory of the in-memory build against the file size.

Run:  python bench/netcdf_compression.py [results/faithful/run.nc] [--repeat 3] [--levels 0,1,...,9]

Every level is measured without and with HDF5's shuffle filter (bytes
regrouped by significance before zlib: float64 draws share their exponent
bytes).
"""

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import arviz as az
import numpy as np

import gmmflow
from gmmflow.results import files, placement


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(idata, level, shuffle, repeat, workdir):
    """Build (in memory), save (build + write + fsync + rename) and read back one setting."""
    path = workdir / f"l{level}{'s' if shuffle else ''}.nc"
    build, data = timed(lambda: files.netcdf_bytes(idata, level, shuffle), repeat)
    write, _ = timed(lambda: placement.write_bytes(files.netcdf_bytes(idata, level, shuffle), path, overwrite=True),
                     repeat)
    read, back = timed(lambda: gmmflow.load(path), repeat)
    read_az, _ = timed(lambda: az.from_netcdf(path).posterior.load(), repeat)
    same = all(np.array_equal(idata[g][v].values, back[g][v].values, equal_nan=idata[g][v].dtype.kind == "f")
               for g in idata.groups() for v in idata[g].data_vars)
    return {"size": path.stat().st_size, "build": build, "save": write, "load": read, "az": read_az,
            "same": same, "bytes": data.nbytes}


def group_ratios(idata, level):
    """Compressed / raw bytes per group (each group alone in a file)."""
    rows = {}
    for group in idata.groups():
        single = az.InferenceData(attrs=idata.attrs, **{group: idata[group]})
        raw = files.netcdf_bytes(single, 0).nbytes
        rows[group] = (raw, files.netcdf_bytes(single, level, shuffle=True).nbytes / raw)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("result", nargs="?", default="results/faithful/run.nc")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--levels", default="0,1,2,3,4,5,6,7,8,9", help="zlib levels (0: the baseline)")
    args = parser.parse_args()
    idata = gmmflow.load(args.result)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        levels = [int(x) for x in args.levels.split(",")]
        settings = [(0, False)] + [(lvl, shuf) for shuf in (False, True) for lvl in levels if lvl]
        rows = {s: measure(idata, *s, args.repeat, workdir) for s in settings}
    base = rows[(0, False)]
    print(f"{args.result}: median of {args.repeat}; ratios against level 0 (uncompressed) of this run")
    print(f"{'level':>8} {'size MB':>8} {'size':>6} {'build s':>8} {'save s':>8} {'save':>6} "
          f"{'load s':>8} {'load':>6} {'arviz s':>8} {'arviz':>6} identical")
    for (lvl, shuf), r in rows.items():
        name = f"{lvl}{'+shuf' if shuf else ''}"
        print(f"{name:>8} {r['size'] / 1e6:8.2f} {r['size'] / base['size']:6.3f} {r['build']:8.3f} "
              f"{r['save']:8.3f} {r['save'] / base['save']:6.2f} {r['load']:8.3f} {r['load'] / base['load']:6.2f} "
              f"{r['az']:8.3f} {r['az'] / base['az']:6.2f} {r['same']}")
    print(f"\nper group at level {files.COMPRESSION_LEVEL} with shuffle: raw MB, compressed/raw")
    for group, (raw, ratio) in group_ratios(idata, files.COMPRESSION_LEVEL).items():
        print(f"  {group:<22} {raw / 1e6:8.2f} {ratio:6.3f}")
    tracemalloc.start()
    data = files.netcdf_bytes(idata)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\nin-memory build at level {files.COMPRESSION_LEVEL}: file {data.nbytes / 1e6:.2f} MB, "
          f"peak Python allocations {peak / 1e6:.2f} MB ({peak / data.nbytes:.2f}x the file)")


if __name__ == "__main__":
    main()
