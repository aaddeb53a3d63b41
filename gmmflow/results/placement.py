"""Where outputs go: checked before any work, placed atomically, never over an input.

Every file and directory gmmflow writes (``save``, ``write_report``, ``run``
and the commands ``em``, ``sample``, ``run``, ``report``) follows three rules.

**Outputs never overlap inputs.** Before any work, the output path is
resolved (symlinks, ``..``) and compared with every input by identity
(``st_dev``, ``st_ino``: hard links and bind mounts count as the same file):
an output that is an input, an output directory that is or contains an input,
and an output inside an input directory (a zarr store) are refused, even with
``overwrite``. So is an existing output that is not a regular file or
directory (a FIFO, a device, a socket), and replacing a directory that
gmmflow did not write: every output directory holds a marker file,
``.gmmflow-output``, listing the files gmmflow put there, and only a
directory holding nothing else is ever replaced. The destination directory
must be writable (a probe file is created and removed) and, when the size is
known, have the free space.

**Atomic placement with no-replace semantics.** Outputs are built under a
temporary name in the destination directory,
``.<name>.gmmflow-tmp-<pid>-<random>``, created with the permissions a plain
``open``/``mkdir`` would give (0o666 / 0o777 less the umask; a replaced file
keeps its mode), and moved into place by one ``renameat2`` call (Linux >=
3.15, through ctypes):

- without ``overwrite``, ``RENAME_NOREPLACE``: an output that appeared while
  the work ran is not replaced; the new result is kept under
  ``<stem>-kept-<pid><suffix>`` and the error names it;
- ``overwrite`` of a directory, ``RENAME_EXCHANGE``: the new directory and
  the previous one swap names in one step, then the previous one (now under
  the temporary name) is removed. A kill at any moment leaves either the
  previous output or the new one in place, never neither;
- ``overwrite`` of a file: ``rename(2)``, which replaces atomically.

Where ``renameat2`` is missing (another OS, or a filesystem that answers
EINVAL, e.g. some FUSE and network filesystems), files are placed by
``link(2)`` + ``unlink(2)`` (no-replace as well; without hard-link support,
an existence check then ``rename``, with a window between the two); a
directory by ``rename(2)``, which never replaces a non-empty directory; and
an overwritten directory by two renames (the previous directory to a
temporary name, the new one into place), which leaves a window where a kill
hides the previous output under the temporary name (reported as debris, see
below, and recoverable by renaming it back).

**Debris from killed runs is found and named.** A temporary name carries the
pid of the process that made it; when a command writes into a directory that
holds temporary files or directories of processes that are no longer alive,
it warns once (:class:`~gmmflow.exceptions.OutputWarning`) with their names,
and :func:`remove_debris` (``gmmflow clean DIR``) removes them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import stat
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gmmflow._version import __version__
from gmmflow.exceptions import OutOfSpaceError, OutputWarning, UnsafeOutputError

MARKER_FILE = ".gmmflow-output"
TMP_TAG = ".gmmflow-tmp-"
_DEBRIS = re.compile(r"^\.(?P<name>.+)\.gmmflow-tmp-(?P<pid>\d+)-[0-9a-f]{8}$")
SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
OVERWRITE_HINT = "overwrite=True (CLI: --overwrite)"

Identity = tuple[int, int]


# --------------------------------------------------------------------------- renameat2
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _load_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl without it
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


class Unsupported(Exception):
    """``renameat2`` with this flag is not available for these paths (ENOSYS, EINVAL)."""


def rename2(src: Path, dst: Path, flags: int) -> None:
    """``renameat2(src, dst, flags)``; :class:`Unsupported` where the kernel or filesystem lacks it.

    Other failures raise the ``OSError`` of their errno (EEXIST for
    ``RENAME_NOREPLACE`` onto an existing path, ENOENT ...).
    """
    if _renameat2 is None:
        raise Unsupported("renameat2 is not available")
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        raise Unsupported(os.strerror(code))
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


# --------------------------------------------------------------------------- paths and identities
def resolved(path: str | os.PathLike) -> Path:
    """``path`` absolute with symlinks and ``..`` resolved (as far as it exists)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _identity(path: Path) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ancestors(path: Path) -> Iterator[Path]:
    """``path``'s existing strict ancestors, nearest first."""
    yield from (p for p in path.parents if p.exists())


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"  # pragma: no cover - every POSIX type is listed above


def overlap(target: Path, inputs: Iterable[str | os.PathLike]) -> str | None:
    """How the output ``target`` overlaps one of ``inputs`` (a phrase for a message), or None.

    Compares identities, not names: the same file under another name (a
    symlink, a hard link, a bind mount) is the same input.
    """
    target_id = _identity(target)
    up_ids = {_identity(p) for p in _ancestors(target)}
    for raw in inputs:
        source = resolved(raw)
        source_id = _identity(source)
        if source_id is None:
            continue
        if source_id == target_id:
            return f"is the input {raw}" + ("" if source == target else f" (the same file as {target})")
        if source_id in up_ids:
            return f"is inside the input directory {raw}"
        if target_id is not None and target_id in {_identity(p) for p in _ancestors(source)}:
            return f"contains the input {raw}"
    if target_id is not None and target.is_dir():  # hard links to an input inside the directory
        ids = {_identity(resolved(raw)): raw for raw in inputs}
        for entry in _entries(target):
            raw = ids.get(_identity(target / entry))
            if raw is not None:
                return f"contains the input {raw} (as {target / entry}, a hard link)"
    return None


def _some(names: list[str]) -> str:
    """The first three names, and how many more: one line whatever the count."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _entries(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


# --------------------------------------------------------------------------- gmmflow's own directories
def write_marker(directory: Path) -> None:
    """Record the files gmmflow put in ``directory`` (call when it is complete)."""
    files = [e for e in _entries(directory) if e != MARKER_FILE]
    (directory / MARKER_FILE).write_text(json.dumps({"written_by": f"gmmflow {__version__}", "files": files}))


def foreign_entries(directory: Path) -> list[str] | None:
    """Entries of ``directory`` gmmflow did not write; None if it is not a gmmflow output directory.

    An empty directory holds nothing to lose: ``[]``.
    """
    entries = _entries(directory)
    if not entries:
        return []
    try:
        listed = set(json.loads((directory / MARKER_FILE).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [e for e in entries if e != MARKER_FILE and not (e in listed and (directory / e).is_file()
                                                             and not (directory / e).is_symlink())]


def _check_replaceable(target: Path, shown) -> None:
    """``target`` (shown to the user as ``shown``) is a directory gmmflow may replace."""
    foreign = foreign_entries(target)
    if foreign is None:
        raise UnsafeOutputError(
            f"{shown} exists and is not a gmmflow output directory (it has no readable {MARKER_FILE}); "
            "gmmflow replaces only directories it wrote: move it away or choose another output directory.")
    if foreign:
        raise UnsafeOutputError(
            f"{shown} holds files gmmflow did not write ({_some(foreign)}); move them out or choose another "
            "output directory.")
    if target.is_dir() and _identity(target)[0] != _identity(target.parent)[0]:
        raise UnsafeOutputError(f"{shown} is a mount point and cannot be replaced; choose a directory inside "
                                "it as the output.")


# --------------------------------------------------------------------------- checks before work
def check_file_destination(path: str | os.PathLike, overwrite: bool, inputs: Iterable = (), *,
                           size: float = 0.0, overwrite_hint: str = OVERWRITE_HINT) -> Path:
    """Raise before any work if a result file cannot be written at ``path``; return the resolved path.

    Refused: a missing or read-only directory, an existing directory, an
    existing path that is not a regular file (FIFO, device, socket), an
    existing file without ``overwrite``, any overlap with ``inputs``, and less
    free space than ``size`` bytes. Warns about debris of killed runs.
    """
    inputs = list(inputs)
    target = resolved(path)
    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"Directory {Path(path).parent} does not exist; create it first.")
    _check_kind(path, target, FILE)
    _check_overlap(path, target, inputs)
    _check_absent(path, target, overwrite, overwrite_hint)
    check_writable(parent, size, path)
    return target


def check_directory_destination(path: str | os.PathLike, overwrite: bool, inputs: Iterable = (), *,
                                size: float = 0.0, overwrite_hint: str = OVERWRITE_HINT) -> Path:
    """Raise before any work if ``path`` cannot become an output directory; return the resolved path.

    Refused: an existing path that is not a directory, an existing directory
    without ``overwrite``, with ``overwrite`` one that gmmflow did not write
    (see :func:`foreign_entries`) or a mount point, any overlap with
    ``inputs``, and a nearest existing ancestor that is not writable or has
    less than ``size`` bytes free. Missing parents are created at the end.
    """
    inputs = list(inputs)
    target = resolved(path)
    _check_kind(path, target, DIRECTORY)
    _check_overlap(path, target, inputs)
    if target.is_dir():
        _check_replaceable(target, path)
    _check_absent(path, target, overwrite, overwrite_hint)
    check_writable(anchor_of(target), size, path)
    return target


FILE, DIRECTORY = "a regular file", "a directory"


def _check_kind(path, target: Path, wanted: str) -> None:
    """An existing ``target`` must be what gmmflow writes there: a regular file, or a directory."""
    try:
        kind = _kind(os.lstat(target).st_mode)
    except FileNotFoundError:
        return
    if kind == wanted:
        return
    if kind == DIRECTORY:
        raise IsADirectoryError(f"{path} is a directory; give a file name such as {Path(path) / 'result.nc'}.")
    raise UnsafeOutputError(f"{path} exists and is {kind}, not {wanted}; gmmflow will not replace it, "
                            "even with overwrite: choose another output path.")


def _check_absent(path, target: Path, overwrite: bool, overwrite_hint: str) -> None:
    if not overwrite and os.path.lexists(target):
        raise FileExistsError(f"{path} already exists; pass {overwrite_hint} to replace it.")


def _check_overlap(path, target: Path, inputs: list) -> None:
    how = overlap(target, inputs)
    if how is not None:
        raise UnsafeOutputError(f"the output {path} {how}; gmmflow never writes over its inputs, even with "
                                "overwrite: choose another output path.")


def anchor_of(target: Path) -> Path:
    """Where the temporary directory for ``target`` goes: its parent, or the nearest existing ancestor."""
    anchor = target.parent
    while not anchor.exists():
        anchor = anchor.parent
    return anchor


def check_writable(directory: Path, size: float = 0.0, what="the output") -> None:
    """Raise if a file cannot be created in ``directory`` or it has less than ``size`` bytes free.

    The probe creates and removes a temporary file: permissions, read-only
    mounts, immutable directories and ACLs all show, for root too. Warns about
    debris of killed runs found there.
    """
    probe = directory / tmp_name("probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno in SPACE_ERRNOS:
            raise OutOfSpaceError(f"{directory} has no free space left; free some space or choose another "
                                  "output path.") from None
        raise PermissionError(f"cannot write in {directory} ({reason}); choose a writable output path.") from None
    check_free_space(directory, size, what)
    warn_about_debris(directory)


def free_bytes(directory: Path) -> float:
    st = os.statvfs(directory)
    return float(st.f_bavail * st.f_frsize)


def check_free_space(directory: Path, size: float, what: str = "the output") -> None:
    """Raise :class:`OutOfSpaceError` if ``directory``'s filesystem has less than ``size`` bytes free."""
    if size <= 0:
        return
    free = free_bytes(directory)
    if free < size:
        raise OutOfSpaceError(f"{what} needs about {_human(size)} but {directory} has only {_human(free)} free; "
                              "free some space or choose another output path.")


def _human(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return ""  # pragma: no cover


# --------------------------------------------------------------------------- debris
def tmp_name(name: str) -> str:
    """``.<name>.gmmflow-tmp-<pid>-<random>``: recognisably gmmflow's, and whose."""
    return f".{name}{TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def find_debris(directory: str | os.PathLike) -> list[Path]:
    """gmmflow temporary files and directories in ``directory`` whose process is no longer alive."""
    directory = Path(directory)
    found = []
    for entry in _entries(directory):
        match = _DEBRIS.match(entry)
        if match and not _alive(int(match["pid"])):
            found.append(directory / entry)
    return found


_REPORTED: set[Path] = set()


def warn_about_debris(directory: Path) -> None:
    """One :class:`OutputWarning` naming the debris in ``directory`` (each piece reported once)."""
    debris = [p for p in find_debris(directory) if p not in _REPORTED]
    _REPORTED.update(debris)
    if debris:
        warnings.warn(f"{directory} holds {len(debris)} temporary file(s) left by killed gmmflow runs "
                      f"({_some([p.name for p in debris])}); "
                      f"remove them with: gmmflow clean {directory}", OutputWarning, stacklevel=2)


def remove_debris(directory: str | os.PathLike) -> list[Path]:
    """Remove what :func:`find_debris` finds; returns the paths removed."""
    debris = find_debris(directory)
    for path in debris:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return debris


# --------------------------------------------------------------------------- placement
def _kept_path(target: Path, is_dir: bool) -> Path:
    """A free visible name next to ``target`` for a result that could not take its place:
    ``fit-kept-<pid>.nc`` for a file, ``out-kept-<pid>`` for a directory."""
    for i in range(1000):
        tag = f"-kept-{os.getpid()}" + (f"-{i}" if i else "")
        candidate = target.with_name(target.name + tag if is_dir else f"{target.stem}{tag}{target.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"no free name next to {target}")  # pragma: no cover


def place_new(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` if ``target`` does not exist (FileExistsError if it does)."""
    try:
        rename2(tmp, target, RENAME_NOREPLACE)
        return
    except Unsupported:
        pass
    if tmp.is_dir():
        if os.path.lexists(target) and not (target.is_dir() and not _entries(target)):
            raise FileExistsError(errno.EEXIST, "File exists", str(target))
        os.rename(tmp, target)  # rename(2) never replaces a non-empty directory
        return
    try:
        os.link(tmp, target)  # fails with EEXIST: no-replace for files
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem: check, then rename (a window between the two)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)


def place(tmp: Path, target: Path, overwrite: bool, inputs: Iterable = (), shown=None) -> None:
    """Move the finished ``tmp`` (file or directory) to ``target``; see the module docstring.

    The checks made before the work are repeated on whatever is at
    ``target`` now: it may have changed while the work ran.
    """
    shown = target if shown is None else shown
    inputs = list(inputs)
    is_dir = tmp.is_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        place_new(tmp, target)
        return
    except FileExistsError:
        pass
    try:
        if not overwrite:
            raise FileExistsError(f"{shown} appeared while gmmflow was working and was not replaced (no "
                                  "overwrite).")
        _check_kind(shown, target, DIRECTORY if is_dir else FILE)
        _check_overlap(shown, target, inputs)
        if is_dir:
            _check_replaceable(target, shown)
    except (FileExistsError, IsADirectoryError, UnsafeOutputError) as err:
        kept = _kept_path(target, is_dir)
        place_new(tmp, kept)
        raise type(err)(f"{err} The new result is at {kept}.") from None
    if is_dir:
        _exchange_directories(tmp, target, shown)
    else:
        os.replace(tmp, target)


def _exchange_directories(tmp: Path, target: Path, shown) -> None:
    """Swap ``tmp`` (new) and ``target`` (previous) atomically, then remove the previous one."""
    try:
        rename2(tmp, target, RENAME_EXCHANGE)
        previous = tmp
    except FileNotFoundError:  # removed since the last check: nothing to replace
        place_new(tmp, target)
        return
    except Unsupported:  # two renames: a kill between them leaves the previous one under a debris name
        previous = target.with_name(tmp_name(target.name))
        os.rename(target, previous)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(previous, target)  # put the previous directory back
            raise
    remove_previous(previous, target, shown)


def remove_previous(previous: Path, target: Path, shown) -> None:
    """Remove the replaced directory, unless something foreign was added to it meanwhile."""
    foreign = foreign_entries(previous)
    if foreign is None:  # swapped for a directory gmmflow did not write after the last check
        foreign = _entries(previous)
    if foreign:
        kept = _kept_path(target.with_name(target.name + "-previous"), True)
        os.rename(previous, kept)
        warnings.warn(f"files were added to {shown} while gmmflow was working ({_some(foreign)}); "
                      f"the previous directory is kept at {kept}.", OutputWarning, stacklevel=3)
        return
    shutil.rmtree(previous)


# --------------------------------------------------------------------------- writing
def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)  # a replaced file keeps its permissions
    except OSError:
        return -1


def _space_error(what) -> OutOfSpaceError:
    return OutOfSpaceError(f"no space left on the device while writing {what}; free some space or choose "
                           "another output path.")


@contextmanager
def _removed_on_failure(tmp: Path, shown) -> Iterator[None]:
    """Remove ``tmp`` if the block fails; out-of-space errors name ``shown``, not the temporary path."""
    try:
        yield
    except OutOfSpaceError as err:
        _discard(tmp)
        raise OutOfSpaceError(str(err).replace(str(tmp), str(shown))) from None
    except OSError as err:
        _discard(tmp)
        if err.errno in SPACE_ERRNOS:
            raise _space_error(shown) from None
        raise
    except BaseException:
        _discard(tmp)
        raise


def write_bytes(data, target: Path, overwrite: bool, inputs: Iterable = (), shown=None) -> None:
    """Write ``data`` to a temporary file next to ``target`` with plain I/O, fsync, and :func:`place` it.

    Free space is checked first; ENOSPC or EDQUOT while writing becomes an
    :class:`OutOfSpaceError` naming the file, and the temporary file is removed.
    """
    shown = target if shown is None else shown
    view = memoryview(data).cast("B")
    check_free_space(target.parent, view.nbytes, str(shown))
    tmp = target.parent / tmp_name(target.name)
    with _removed_on_failure(tmp, shown):
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask applies, as for open()
        try:
            mode = _mode_for(target)
            if mode >= 0:
                os.fchmod(fd, mode)
            done = 0
            while done < view.nbytes:
                done += os.write(fd, view[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        place(tmp, target, overwrite, inputs, shown)


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


@contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool, inputs: Iterable = (), *,
                     overwrite_hint: str = OVERWRITE_HINT) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``path`` only if the block succeeds.

    The destination is checked first (:func:`check_directory_destination`).
    The temporary directory is made next to ``path`` (or in its nearest
    existing ancestor, so the final rename stays on one filesystem). On any
    exception, including KeyboardInterrupt and SIGTERM, it is removed and
    ``path`` is untouched; on success the marker file is written and the
    directory is placed by :func:`place`. ENOSPC while the block writes
    becomes an :class:`OutOfSpaceError` naming ``path``.
    """
    inputs = list(inputs)
    target = check_directory_destination(path, overwrite, inputs, overwrite_hint=overwrite_hint)
    tmp = anchor_of(target) / tmp_name(target.name)
    with _removed_on_failure(tmp, path):
        os.mkdir(tmp, 0o777)  # the umask applies, as for mkdir
        yield tmp
        write_marker(tmp)
        place(tmp, target, overwrite, inputs, shown=path)
