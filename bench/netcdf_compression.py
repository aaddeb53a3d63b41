"""Result-file compression: size and write/read time for zlib levels 1..9 against uncompressed.

Reads a result (default: ``results/faithful/run.nc``, what ``gmmflow run
--seed 0`` writes) and, for each setting, builds the netCDF file in memory
(``files.netcdf_bytes``), saves it (build, then ``placement.write_bytes``:
write, fsync, rename), reads it back with ``gmmflow.load`` and with
``arviz.from_netcdf``. Level 0
(no compression) is the baseline, measured in the same run; each timing is
the median of ``--repeat`` runs, printed with its ratio to the baseline.
Also prints, per group, the compressed-to-raw ratio at the chosen level (the
figure ``files.result_file_bytes`` uses as its lower bound), and what
building the file in memory costs against HDF5 writing it on disk itself
(the former way, which crashed on a full disk): CPU and wall time, and the
peak Python allocations against the file size.

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
import xarray as xr

import gmmflow
from gmmflow.results import files, placement


def timed(fn, repeat):
    """Median CPU seconds of this process (what compression costs, whatever else runs on the machine)
    and median wall seconds (what the user waits, fsync included)."""
    cpu, wall, out = [], [], None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return (statistics.median(cpu), statistics.median(wall)), out


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
    return {"size": path.stat().st_size, "build": build[0], "save": write[0], "save_wall": write[1],
            "load": read[0], "az": read_az[0], "same": same, "bytes": data.nbytes}


def hdf5_to_disk(idata, path, level):
    """The former way: h5netcdf (HDF5) writes the file on disk itself, one group at a time."""
    xr.Dataset(attrs=dict(idata.attrs)).to_netcdf(path, mode="w", engine=files.ENGINE)
    for group in idata.groups():
        ds = idata[group].copy()
        for var in ds.variables.values():
            var.encoding = {}
        ds.to_netcdf(path, mode="a", group=group, engine=files.ENGINE,
                     encoding=files._compression(ds, level, True) if level else None)


def peak_python_bytes(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def in_memory_cost(idata, repeat, workdir):
    """Build in memory and write with os.write, against HDF5 writing to disk, at levels 0 and the chosen one."""
    print("\nin memory + os.write against HDF5 writing the file itself (CPU s of this process, wall s; "
          "peak Python allocations / file size)")
    for level in (0, files.COMPRESSION_LEVEL):
        path = workdir / f"direct{level}.nc"
        direct, _ = timed(lambda: hdf5_to_disk(idata, path, level), repeat)
        mem, _ = timed(lambda: placement.write_bytes(files.netcdf_bytes(idata, level), workdir / f"m{level}.nc",
                                                     overwrite=True), repeat)
        size = path.stat().st_size
        peak_direct = peak_python_bytes(lambda: hdf5_to_disk(idata, path, level)) / size
        peak_mem = peak_python_bytes(lambda: files.netcdf_bytes(idata, level)) / size
        print(f"  level {level}: HDF5 to disk {direct[0]:.3f} CPU / {direct[1]:.3f} wall, peak {peak_direct:.2f}x; "
              f"in memory {mem[0]:.3f} CPU ({mem[0] / direct[0]:.2f}x) / {mem[1]:.3f} wall, peak {peak_mem:.2f}x")


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
    print(f"{args.result}: median of {args.repeat}; CPU seconds of this process (wall for the save, fsync "
          "included); ratios against level 0 (uncompressed) of this run")
    print(f"{'level':>8} {'size MB':>8} {'size':>6} {'build':>7} {'x':>5} {'save':>7} {'x':>5} {'wall':>7} "
          f"{'load':>7} {'x':>5} {'arviz':>7} {'x':>5} identical")
    for (lvl, shuf), r in rows.items():
        name = f"{lvl}{'+shuf' if shuf else ''}"
        print(f"{name:>8} {r['size'] / 1e6:8.2f} {r['size'] / base['size']:6.3f} "
              + " ".join(f"{r[k]:7.3f} {r[k] / base[k]:5.2f}" for k in ("build", "save"))
              + f" {r['save_wall']:7.3f} "
              + " ".join(f"{r[k]:7.3f} {r[k] / base[k]:5.2f}" for k in ("load", "az")) + f" {r['same']}")
    print(f"\nper group at level {files.COMPRESSION_LEVEL} with shuffle: raw MB, compressed/raw")
    for group, (raw, ratio) in group_ratios(idata, files.COMPRESSION_LEVEL).items():
        print(f"  {group:<22} {raw / 1e6:8.2f} {ratio:6.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        in_memory_cost(idata, args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
