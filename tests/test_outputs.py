"""Outputs: never over an input, placed atomically, no debris, and every fault ends in one line.

Each fault test asserts the one-line message, the exit code, that no
temporary file or directory is left (``.gmmflow-tmp-`` names), and that every
file that existed before is byte-identical afterwards (the previous output
included). Tests that need a small or read-only filesystem mount a tmpfs
(root, as in CI) and skip, saying why, where that is not possible; the
out-of-space path is also tested with a mocked ENOSPC everywhere.
"""

import errno
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import gmmflow
from conftest import fake_nuts, forbid_work
from gmmflow.cli import main
from gmmflow.results import placement

TESTS = Path(__file__).resolve().parent
FAKE_CLI = TESTS / "fake_nuts_cli.py"

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    FIT = gmmflow.fit_em(gmmflow.GMM(2), gmmflow.load_dataset("faithful"), n_init=1, seed=0)


# ---------------------------------------------------------------- helpers
def tree(root: Path) -> dict:
    """Every entry under ``root`` (hidden ones too): file -> sha256, else its kind or link target."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[str(path.relative_to(root))] = ("symlink", os.readlink(path))
            elif stat.S_ISREG(mode):
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path.relative_to(root))] = stat.S_IFMT(mode)
    return found


def debris(root: Path) -> list[str]:
    """Temporary files and directories anywhere under ``root`` (not what they hold)."""
    return [p for p in tree(root) if placement.TMP_TAG in Path(p).name]


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def previous_output(directory: Path) -> Path:
    """A directory as gmmflow leaves it (marker included), holding a small 'previous' result."""
    directory.mkdir(parents=True)
    (directory / "report.html").write_text("previous report")
    (directory / "run.nc").write_bytes(b"previous result")
    placement.write_marker(directory)
    return directory


@pytest.fixture
def fake_sampler(monkeypatch):
    monkeypatch.setattr("gmmflow.workflows.nuts_backends.run_nutpie", fake_nuts)


@pytest.fixture
def no_work(monkeypatch):
    forbid_work(monkeypatch)


def light_report(idata, directory, table=None):
    """The main job's report step without the plots (they cost minutes here and are tested elsewhere)."""
    (directory / "report.html").write_text("<html></html>")


@pytest.fixture
def quick_run(monkeypatch, fake_sampler):
    monkeypatch.setattr(gmmflow.main_job, "write_report_into", light_report)


RUN = ["--quiet", "run", "--draws", "250", "--tune", "10", "--n-init", "1", "--seed", "0", "--sampler", "nutpie"]


def _mount(directory: Path, options: str) -> bool:
    directory.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], capture_output=True)
    return done.returncode == 0


def _umount(directory: Path) -> None:
    subprocess.run(["umount", str(directory)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 kB tmpfs (needs root and permission to mount)."""
    disk = tmp_path / "disk"
    if not _mount(disk, "size=256k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission); the mocked ENOSPC tests "
                    "cover the write path")
    yield disk
    _umount(disk)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = placement.free_bytes(disk)
    (disk / "filler").write_bytes(b"\0" * max(int(free) - leave, 0))


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory no one can create files in, root included: a read-only tmpfs, else chattr +i."""
    directory = tmp_path / "ro"
    if _mount(directory, "ro,size=64k"):
        yield directory
        _umount(directory)
        return
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(directory)]).returncode == 0:
        yield directory
        subprocess.run(["chattr", "-i", str(directory)], check=True)
        return
    pytest.skip("running as root without mount or chattr: root can write in any directory")


# ---------------------------------------------------------------- renameat2 and its fallback
@pytest.fixture(params=["renameat2", "fallback"])
def renames(request, monkeypatch):
    """Run the test with renameat2 and with the fallback used where it is missing."""
    if request.param == "fallback":
        monkeypatch.setattr(placement, "_renameat2", None)
    elif placement._renameat2 is None:
        pytest.skip("renameat2 is not available here (not Linux, or glibc < 2.28)")
    return request.param


def test_renameat2_noreplace_and_exchange(tmp_path):
    if placement._renameat2 is None:
        pytest.skip("renameat2 is not available here (not Linux, or glibc < 2.28)")
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        placement.rename2(tmp_path / "a", tmp_path / "b", placement.RENAME_NOREPLACE)
    placement.rename2(tmp_path / "a", tmp_path / "b", placement.RENAME_EXCHANGE)
    assert (tmp_path / "a").read_text() == "b" and (tmp_path / "b").read_text() == "a"


def test_a_file_that_appears_during_the_work_is_not_replaced(renames, tmp_path, monkeypatch):
    target = tmp_path / "fit.nc"
    real = gmmflow.results.files.netcdf_bytes

    def appears(idata, *args):
        target.write_text("the user's file")
        return real(idata, *args)

    monkeypatch.setattr(gmmflow.results.files, "netcdf_bytes", appears)
    kept = tmp_path / f"fit-kept-{os.getpid()}.nc"
    message = f"{target} appeared while gmmflow was working and was not replaced (no overwrite). " \
              f"The new result is at {kept}."
    with pytest.raises(FileExistsError, match=re.escape(message)):
        gmmflow.save(FIT, target)
    assert target.read_text() == "the user's file"
    assert gmmflow.load(kept).attrs["seed"] == 0
    assert debris(tmp_path) == []


def test_a_directory_that_appears_during_the_run_is_not_replaced(renames, tmp_path, capsys, monkeypatch,
                                                                 quick_run):
    out = tmp_path / "out"

    def appears(idata, directory, table=None):
        out.mkdir()
        (out / "notes.txt").write_text("the user's notes")
        light_report(idata, directory, table)

    monkeypatch.setattr(gmmflow.main_job, "write_report_into", appears)
    code, _, err = cli(capsys, *RUN, "--out", out)
    kept = tmp_path / f"out-kept-{os.getpid()}"
    assert code == 2
    assert one_line(err) == (f"gmmflow run: error: {out} appeared while gmmflow was working and was not "
                             f"replaced (no overwrite). The new result is at {kept}.")
    assert (out / "notes.txt").read_text() == "the user's notes" and sorted(os.listdir(out)) == ["notes.txt"]
    assert {"run.nc", "report.html", placement.MARKER_FILE} <= set(os.listdir(kept))
    assert debris(tmp_path) == []


def test_overwrite_replaces_a_gmmflow_directory_whole(renames, tmp_path):
    out = previous_output(tmp_path / "rep")
    with placement.atomic_directory(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(out)) == [placement.MARKER_FILE, "new.txt"]
    assert os.listdir(tmp_path) == ["rep"]


def test_a_file_added_to_the_previous_directory_during_the_work_stops_the_replacement(renames, tmp_path):
    out = previous_output(tmp_path / "rep")
    kept = tmp_path / f"rep-kept-{os.getpid()}"
    message = (f"{out} holds files gmmflow did not write (late.txt); move them out or choose another output "
               f"directory. The new result is at {kept}.")
    with pytest.raises(gmmflow.UnsafeOutputError, match=re.escape(message)):
        with placement.atomic_directory(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            (out / "late.txt").write_text("added meanwhile")
    assert sorted(os.listdir(out)) == sorted([placement.MARKER_FILE, "late.txt", "report.html", "run.nc"])
    assert sorted(os.listdir(kept)) == [placement.MARKER_FILE, "new.txt"] and debris(tmp_path) == []


def test_a_file_added_just_before_the_exchange_is_kept_with_the_previous_directory(renames, tmp_path,
                                                                                   monkeypatch):
    out = previous_output(tmp_path / "rep")
    real_check = placement._check_replaceable
    calls = []

    def then_added(target, shown):  # the check before the swap (the second) passes; the file arrives after it
        real_check(target, shown)
        calls.append(target)
        if len(calls) == 2:
            (target / "late.txt").write_text("added meanwhile")

    monkeypatch.setattr(placement, "_check_replaceable", then_added)
    kept = tmp_path / f"rep-previous-kept-{os.getpid()}"
    with pytest.warns(gmmflow.OutputWarning, match=re.escape(f"files were added to {out} while gmmflow was "
                                                             f"working (late.txt); the previous directory is "
                                                             f"kept at {kept}.")):
        with placement.atomic_directory(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert (kept / "late.txt").read_text() == "added meanwhile" and (kept / "run.nc").read_bytes() == \
        b"previous result"
    assert sorted(os.listdir(out)) == [placement.MARKER_FILE, "new.txt"] and debris(tmp_path) == []


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (the clean-ups are switched off too)."""


def test_a_kill_between_the_renames(renames, tmp_path, monkeypatch):
    """renameat2: one exchange, so a kill after it leaves the new output in place and the previous one
    under a temporary name; the fallback's two renames leave the output missing in between (its
    documented window). Either way nothing is lost, the debris is named, and `gmmflow clean` removes it."""
    out = previous_output(tmp_path / "rep")
    before = tree(out)

    def kill(*args):
        raise Killed

    if renames == "renameat2":
        monkeypatch.setattr(placement, "remove_previous", kill)
    else:
        real_rename = os.rename
        monkeypatch.setattr(placement.os, "rename", lambda a, b: (real_rename(a, b), kill())
                            if Path(b).name != "rep" else real_rename(a, b))
    monkeypatch.setattr(placement, "_discard", lambda path: None)
    with pytest.raises(Killed):
        with placement.atomic_directory(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    left = sorted(debris(tmp_path))
    new = tree(out) if out.exists() else None
    if renames == "renameat2":  # the new output in place, the previous one under the temporary name
        assert sorted(new) == [placement.MARKER_FILE, "new.txt"]
        assert [tree(tmp_path / name) for name in left] == [before]
    else:  # the window: no output; the previous one and the new one both under temporary names
        assert new is None
        assert sorted(sorted(tree(tmp_path / name)) for name in left) == \
            sorted([sorted(before), [placement.MARKER_FILE, "new.txt"]])
        assert before in [tree(tmp_path / name) for name in left]
    monkeypatch.setattr(placement, "_alive", lambda pid: False)  # later: the killed process is gone
    message = (f"{tmp_path} holds {len(left)} temporary file(s) left by killed gmmflow runs ({', '.join(left)}); "
               f"remove them with: gmmflow clean {tmp_path}")
    with pytest.warns(gmmflow.OutputWarning, match=re.escape(message)):
        placement.check_directory_destination(tmp_path / "next", overwrite=False)
    assert placement.remove_debris(tmp_path) == [tmp_path / name for name in left] and debris(tmp_path) == []


# ---------------------------------------------------------------- permissions
def test_new_files_follow_the_umask_and_a_replaced_file_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        gmmflow.save(FIT, tmp_path / "a.nc")
        with placement.atomic_directory(tmp_path / "d", overwrite=False) as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.nc").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o750
    (tmp_path / "a.nc").chmod(0o600)
    gmmflow.save(FIT, tmp_path / "a.nc", overwrite=True)
    assert stat.S_IMODE(os.stat(tmp_path / "a.nc").st_mode) == 0o600


# ---------------------------------------------------------------- debris and `gmmflow clean`
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_debris_of_dead_runs_is_named_and_cleaned_and_live_runs_are_left_alone(tmp_path, capsys):
    dead = tmp_path / f".fit.nc.gmmflow-tmp-{_dead_pid()}-0123abcd"
    dead.write_text("half a file")
    dead_dir = tmp_path / f".rep.gmmflow-tmp-{_dead_pid()}-89abcdef"
    dead_dir.mkdir()
    (dead_dir / "run.nc").write_text("half")
    live = tmp_path / f".other.nc.gmmflow-tmp-{os.getpid()}-deadbeef"
    live.write_text("being written")
    (tmp_path / "keep.txt").write_text("mine")
    code, out, err = cli(capsys, "--quiet", "em", "--data", "faithful", "--k", "2", "--n-init", "1", "--seed", "0",
                         "--out", tmp_path / "fit.nc")
    assert code == 0
    names = ", ".join(sorted([dead.name, dead_dir.name], key=lambda n: n))
    assert one_line(err) == (f"warning: files: {tmp_path} holds 2 temporary file(s) left by killed gmmflow runs "
                             f"({names}); remove them with: gmmflow clean {tmp_path}")
    code, out, err = cli(capsys, "clean", tmp_path)
    assert code == 0 and err == ""
    assert sorted(out.splitlines()) == sorted(f"removed {p}" for p in (dead, dead_dir))
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "keep.txt", "fit.nc"])
    assert cli(capsys, "clean", tmp_path)[1] == f"nothing to clean in {tmp_path}\n"
    code, _, err = cli(capsys, "clean", tmp_path / "keep.txt")
    assert code == 2 and one_line(err) == f"gmmflow clean: error: {tmp_path / 'keep.txt'} is not a directory; " \
                                          "give the directory to clean."


# ---------------------------------------------------------------- faults, through the command line
def test_full_disk_is_refused_before_writing(small_disk, capsys):
    previous = small_disk / "fit.nc"
    previous.write_bytes(b"previous result")
    fill(small_disk, leave=8_000)
    before = tree(small_disk)
    code, _, err = cli(capsys, "--quiet", "em", "--data", "faithful", "--k", "2", "--n-init", "1", "--seed", "0",
                       "--overwrite", "--out", previous)
    assert code == 2
    assert re.fullmatch(rf"gmmflow em: error: {re.escape(str(previous))} needs about \d+\.\d kB but "
                        rf"{re.escape(str(small_disk))} has only \d+\.\d kB free; free some space or choose another "
                        r"output path\.", one_line(err)), err
    assert tree(small_disk) == before


def test_full_disk_during_the_write(small_disk, capsys, monkeypatch):
    """The free-space check passes (another process fills the disk meanwhile): ENOSPC from the write."""
    previous = small_disk / "fit.nc"
    previous.write_bytes(b"previous result")
    fill(small_disk, leave=8_000)
    monkeypatch.setattr(placement, "free_bytes", lambda directory: float("inf"))
    before = tree(small_disk)
    code, _, err = cli(capsys, "--quiet", "em", "--data", "faithful", "--k", "2", "--n-init", "1", "--seed", "0",
                       "--overwrite", "--out", previous)
    assert code == 2
    assert one_line(err) == (f"gmmflow em: error: no space left on the device while writing {previous}; free some "
                             "space or choose another output path.")
    assert tree(small_disk) == before


def test_full_disk_during_a_run_leaves_the_previous_output(small_disk, capsys, monkeypatch, quick_run):
    out = previous_output(small_disk / "out")
    fill(small_disk, leave=30_000)
    monkeypatch.setattr(placement, "free_bytes", lambda directory: float("inf"))
    before = tree(small_disk)
    code, _, err = cli(capsys, *RUN, "--overwrite", "--out", out)
    assert code == 2
    assert one_line(err) == (f"gmmflow run: error: no space left on the device while writing {out / 'run.nc'}; "
                             "free some space or choose another output path.")
    assert tree(small_disk) == before


def test_a_run_too_big_for_the_disk_is_refused_before_work(small_disk, capsys, no_work):
    code, _, err = cli(capsys, "--quiet", "run", "--draws", "1000", "--out", small_disk / "out")
    assert code == 2
    assert re.fullmatch(rf"gmmflow run: error: {re.escape(str(small_disk / 'out'))} needs about \d+\.\d MB but {re.escape(str(small_disk))} "
                        r"has only \d+\.\d kB free; free some space or choose another output path\.", one_line(err))
    assert tree(small_disk) == {}


@pytest.mark.parametrize("enospc", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_mocked_out_of_space_during_the_write(enospc, tmp_path, capsys, monkeypatch):
    previous = tmp_path / "fit.nc"
    previous.write_bytes(b"previous result")
    real_write = os.write

    def write(fd, data):
        real_write(fd, bytes(data)[:100])
        raise OSError(enospc, os.strerror(enospc))

    monkeypatch.setattr(placement.os, "write", write)
    code, _, err = cli(capsys, "--quiet", "em", "--data", "faithful", "--k", "2", "--n-init", "1", "--seed", "0",
                       "--overwrite", "--out", previous)
    assert code == 2
    assert one_line(err) == (f"gmmflow em: error: no space left on the device while writing {previous}; free some "
                             "space or choose another output path.")
    assert os.listdir(tmp_path) == ["fit.nc"] and previous.read_bytes() == b"previous result"


def test_netcdf_is_built_in_memory_so_hdf5_never_meets_a_full_disk(small_disk):
    """What crashed before (h5py issue 914): HDF5 writing to a full disk. The file now reaches the
    disk only through os.write; in a subprocess, so a crash would show as a signal, not kill pytest."""
    fill(small_disk, leave=8_000)
    code = ("import sys, gmmflow, gmmflow.results.placement as p\n"
            "p.free_bytes = lambda directory: float('inf')  # as if the disk filled after the check\n"
            "fit = gmmflow.fit_em(gmmflow.GMM(2), gmmflow.load_dataset('faithful'), n_init=1, seed=0)\n"
            "try:\n    gmmflow.save(fit, sys.argv[1])\n"
            "except gmmflow.OutOfSpaceError as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code, str(small_disk / "x.nc")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("no space left on the device while writing")
    assert sorted(os.listdir(small_disk)) == ["filler"]


@pytest.mark.parametrize("command", ["em", "run", "report"])
def test_a_fifo_as_out_is_refused_even_with_overwrite(command, tmp_path, capsys, no_work):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    gmmflow.save(FIT, tmp_path / "fit.nc")
    before = tree(tmp_path)
    argv = {"em": ["em", "--data", "faithful", "--k", "2"], "run": ["run"], "report": ["report", tmp_path / "fit.nc"]}
    code, _, err = cli(capsys, *argv[command], "--overwrite", "--out", fifo)
    wanted = "a regular file" if command == "em" else "a directory"
    assert code == 2
    assert one_line(err) == (f"gmmflow {command}: error: {fifo} exists and is a FIFO (named pipe), not {wanted}; "
                             "gmmflow will not replace it, even with overwrite: choose another output path.")
    assert tree(tmp_path) == before and stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("command", ["em", "sample"])
def test_a_device_as_out_is_refused_even_with_overwrite(command, capsys, no_work):
    before = os.stat("/dev/null")
    code, _, err = cli(capsys, command, "--data", "faithful", "--k", "2", "--overwrite", "--out", "/dev/null")
    assert code == 2
    assert one_line(err) == (f"gmmflow {command}: error: /dev/null exists and is a character device, not a regular "
                             "file; gmmflow will not replace it, even with overwrite: choose another output path.")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_a_read_only_destination_is_refused_before_work(readonly_dir, capsys, no_work):
    code, _, err = cli(capsys, "em", "--data", "faithful", "--k", "2", "--out", readonly_dir / "fit.nc")
    assert code == 2
    assert re.fullmatch(rf"gmmflow em: error: cannot write in {re.escape(str(readonly_dir))} \((Read-only file "
                        r"system|Operation not permitted|Permission denied)\); choose a writable output path\.",
                        one_line(err)), err
    code, _, err = cli(capsys, "run", "--out", readonly_dir / "run")
    assert code == 2 and "cannot write in" in one_line(err)
    assert os.listdir(readonly_dir) == []


# ---------------------------------------------------------------- an output is never an input
def _inputs(root: Path) -> dict[str, Path]:
    """A data file, a result and a gmmflow output directory holding that result, under root."""
    (root / "data").mkdir()
    csv = root / "data" / "mydata.csv"
    gmmflow.load_dataset("faithful").to_pandas().to_csv(csv, index=False)
    out = previous_output(root / "res")
    gmmflow.save(FIT, out / "fit.nc")
    placement.write_marker(out)  # the result is one of gmmflow's files there
    (root / "links").mkdir()
    os.symlink(csv, root / "links" / "sym.csv")
    os.link(csv, root / "links" / "hard.csv")
    os.symlink(out / "fit.nc", root / "links" / "sym.nc")
    os.link(out / "fit.nc", root / "links" / "hard.nc")
    os.symlink(root / "data", root / "links" / "datadir")
    return {"csv": csv, "result": out / "fit.nc"}


DATA_TARGETS = {  # --out for a command reading --data data/mydata.csv: (path, needs a file or a directory)
    "the data": "data/mydata.csv",
    "the data via a symlink": "links/sym.csv",
    "the data via a hard link": "links/hard.csv",
    "the data via ..": "res/../data/mydata.csv",
    "the data's directory": "data",
    "the data's directory via a symlink": "links/datadir",
    "above the data": ".",
}
RESULT_TARGETS = {  # --out for `report res/fit.nc`
    "the result": "res/fit.nc",
    "the result's directory": "res",
    "the result via a symlink": "links/sym.nc",
    "the result via a hard link": "links/hard.nc",
    "above the result": ".",
}
COMMANDS = {
    "em": ["em", "--data", "{csv}", "--k", "2"],
    "sample": ["sample", "--data", "{csv}", "--k", "2"],
    "run": ["run", "--data", "{csv}"],
    "report": ["report", "{result}"],
}
PROTECTION_GRID = [(command, name, target, overwrite)
                   for command in COMMANDS
                   for name, target in (RESULT_TARGETS if command == "report" else DATA_TARGETS).items()
                   for overwrite in (False, True)]


@pytest.mark.parametrize("command, name, target, overwrite", PROTECTION_GRID,
                         ids=[f"{c}-{n}-{'overwrite' if o else 'plain'}" for c, n, _, o in PROTECTION_GRID])
def test_no_command_modifies_its_inputs(command, name, target, overwrite, tmp_path, capsys, monkeypatch, no_work):
    paths = _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    argv = [a.format(**paths) for a in COMMANDS[command]] + ["--out", target] + (["--overwrite"] if overwrite else [])
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    message = one_line(err)
    assert any(phrase in message for phrase in (
        "gmmflow never writes over its inputs", "is a directory; give a file name", "gmmflow will not replace it",
    )), message
    if command in ("em", "sample") and not (tmp_path / target).is_dir():
        assert "gmmflow never writes over its inputs" in message, message  # the overlap is the reason given
    assert tree(tmp_path) == before


@pytest.mark.parametrize("argv, phrase", [
    (["em", "--data", "{csv}", "--k", "2", "--out", "{csv}", "--overwrite"], "is the input {csv}"),
    (["em", "--data", "{csv}", "--k", "2", "--out", "{root}/links/hard.csv", "--overwrite"],
     "is the input {csv} (the same file as {root}/links/hard.csv)"),
    (["run", "--data", "{csv}", "--out", "{root}/data", "--overwrite"], "contains the input {csv}"),
    (["report", "{result}", "--out", "{root}/res", "--overwrite"], "contains the input {result}"),
    (["report", "{root}/links/hard.nc", "--out", "{root}/res", "--overwrite"],
     "contains the input {root}/links/hard.nc (as {root}/res/fit.nc, a hard link)"),
    (["em", "--data", "{root}/data", "--k", "2", "--out", "{root}/data/fit.nc"], "is inside the input directory"),
], ids=["same file", "hard link", "dir contains data", "dir contains result", "dir holds a hard link",
        "inside an input directory (zarr store)"])
def test_overlap_messages(argv, phrase, tmp_path, capsys, no_work):
    paths = _inputs(tmp_path) | {"root": tmp_path}
    before = tree(tmp_path)
    code, _, err = cli(capsys, *[a.format(**paths) for a in argv])
    assert code == 2
    message = one_line(err)
    assert phrase.format(**paths) in message and message.endswith(
        "; gmmflow never writes over its inputs, even with overwrite: choose another output path."), message
    assert tree(tmp_path) == before


def test_a_directory_gmmflow_did_not_write_is_never_replaced(tmp_path, capsys, no_work):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    theirs = previous_output(tmp_path / "theirs")
    (theirs / "notes.txt").write_text("added by the user")
    before = tree(tmp_path)
    code, _, err = cli(capsys, "run", "--out", mine, "--overwrite")
    assert code == 2 and one_line(err) == (
        f"gmmflow run: error: {mine} exists and is not a gmmflow output directory (it has no readable "
        f"{placement.MARKER_FILE}); gmmflow replaces only directories it wrote: move it away or choose another "
        "output directory.")
    code, _, err = cli(capsys, "report", tmp_path / "nope.nc", "--out", theirs, "--overwrite")
    assert code == 2 and one_line(err) == (
        f"gmmflow report: error: {theirs} holds files gmmflow did not write (notes.txt); move them out or choose "
        "another output directory.")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- signals
def _spawn(tmp_path, *argv, sleep=600.0):
    flag = tmp_path / "sampling"
    env = dict(os.environ, FAKE_NUTS_FLAG=str(flag), FAKE_NUTS_SLEEP=str(sleep))
    proc = subprocess.Popen([sys.executable, str(FAKE_CLI), *map(str, argv)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, flag


def _wait_for(condition, proc, timeout=600.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("signum, code, message", [(signal.SIGTERM, 143, "gmmflow: terminated"),
                                                   (signal.SIGINT, 130, "gmmflow: interrupted")],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_sampling_leaves_no_debris_and_the_previous_output(signum, code, message, tmp_path):
    out = previous_output(tmp_path / "out")
    before = tree(tmp_path)
    proc, flag = _spawn(tmp_path, "run", "--n-init", "1", "--sampler", "nutpie", "--seed", "0", "--overwrite",
                        "--out", out)
    _wait_for(flag.exists, proc)
    assert debris(tmp_path)  # the run's temporary directory, while it samples
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    flag.unlink()
    assert proc.returncode == code and stderr == message + "\n" and stdout == ""
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_sigterm_to_a_real_gmmflow_run(tmp_path):
    """The real run (default sampler): SIGTERM once its temporary directory exists and a second has passed.

    The run draws 4 x 40,000 so that it is still sampling when the signal comes (the default 4 x 1000 can
    finish within seconds of the directory appearing on a warm cache, which made a fixed sleep a race).
    """
    out = previous_output(tmp_path / "out")
    before = tree(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "gmmflow.cli", "run", "--n-init", "1", "--seed", "0",
                             "--draws", "40000", "--overwrite", "--out", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: debris(tmp_path), proc)
    time.sleep(1)
    assert proc.poll() is None, "the run ended before the signal: make it longer"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143 and stderr == "gmmflow: terminated\n"
    assert tree(tmp_path) == before
