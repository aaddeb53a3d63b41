"""Reading a user's CSV file as a labelled ``(obs_id, feature)`` array, refusing what it cannot read for sure.

The rules (README, "Data input"):

- **Separator**: sniffed from the first 200 lines among ``,`` ``;`` tab ``|``
  (quote-aware), then runs of whitespace: the one that splits every line,
  header included, into the same number (>= 2) of fields. Two that both do
  are ambiguous: refused, naming ``sep=`` (CLI ``--sep``). A file in which
  no separator gives every line the same number of fields is refused with
  the line that differs.
- **Decimal mark**: ``.`` unless the numbers are written with a decimal
  comma (``1,5``); a file with both is refused, naming ``decimal=``
  (CLI ``--decimal``). A decimal comma needs another separator (``;``).
- **Header**: a first row made only of numbers is data, not a header:
  refused, naming ``header=None`` (CLI ``--no-header``; the columns are
  then ``x0, x1, ...``) and ``header=0`` (CLI ``--header``) for files whose
  column names are numbers.
- **Index, ID and empty columns** (unless ``columns=`` / ``--columns``
  chooses the columns): a column with no values (a trailing separator),
  named ``Unnamed: N`` or with an empty name (a pandas index), named
  ``id``/``index``/``*_id`` (any case), equal to 0..n-1 or 1..n (at least 3
  rows), or of distinct integers beside other columns (at least 20 rows) is
  not a measurement: refused, naming it and the fix.
- **Encoding**: UTF-8 (a BOM is allowed) unless ``encoding=`` (CLI
  ``--encoding``) says otherwise; undecodable bytes are refused with their
  position and the fix.
- Integers that float64 would round (beyond 2**53), non-numeric columns and
  missing values are refused naming the column and the line; with
  ``missing=True`` (CLI ``--missing marginalize``) missing values are kept as NaN.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gmmflow.checks import summarize_values
from gmmflow.inputs.matrix import PATH_ATTR, check_exact_integers, default_feature_names
from gmmflow.inputs.missing_cells import MISSING_HINT
from gmmflow.schema import FEATURE as FEATURE_DIM
from gmmflow.schema import OBS as OBS_DIM

SEPARATORS = (",", ";", "\t", "|")
WHITESPACE = r"\s+"
SNIFF_BYTES = 1 << 20  # the separator, decimal mark and header are judged on the first lines of the first MiB
SNIFF_LINES = 200  # (a later line that disagrees is still caught: pandas refuses it, or leaves text to refuse)
NUMBER = {".": re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"),
          ",": re.compile(r"^[+-]?(\d+,?\d*|,\d+)([eE][+-]?\d+)?$")}
INTEGER = re.compile(r"^[+-]?\d+$")
ID_NAMES = re.compile(r"^(id|idx|index|row|rownames)$|[ _-]id$", re.IGNORECASE)
MIN_ROWS_RANGE_INDEX = 3  # a column equal to 0..n-1 or 1..n counts as an index from this many rows
MIN_ROWS_UNIQUE_ID = 20  # distinct integers beside other columns count as IDs from this many rows


def _fix(option: str, python: str) -> str:
    return f"{option} (Python: {python})"


DECIMAL_FIX = {mark: _fix(f"--decimal {mark}", f"decimal={mark!r}") for mark in ".,"}
SEP_FIX = _fix("--sep ';'", "sep=';'")
COLUMNS_FIX = _fix("--columns a,b", "columns=['a', 'b']")


def _show(value: str) -> str:
    return {"\t": "'\\t'", WHITESPACE: "whitespace"}.get(value, repr(value))


def _head_lines(path: Path, encoding: str) -> list[str]:
    """The first complete, non-blank lines of the file (up to ``SNIFF_BYTES``), decoded."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise ValueError(f"{path}: unknown encoding {encoding!r}; give a Python codec name such as 'utf-8', "
                         "'latin-1' or 'cp1252'.") from None
    with open(path, "rb") as f:
        raw = f.read(SNIFF_BYTES + 1)
    try:
        text = decoder.decode(raw[:SNIFF_BYTES], final=len(raw) <= SNIFF_BYTES)
    except UnicodeDecodeError as err:
        raise _encoding_error(path, encoding, err, offset=0) from None
    lines = text.lstrip("\ufeff").splitlines()
    if len(raw) > SNIFF_BYTES:
        lines = lines[:-1]  # possibly cut
    return [line for line in lines if line.strip()][:SNIFF_LINES]


def _encoding_error(path: Path, encoding: str, err: UnicodeDecodeError, offset: int | None) -> ValueError:
    where = f"at offset {offset + err.start}" if offset is not None else "after the first MiB"
    suggestion = "latin-1" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else "utf-8"
    return ValueError(
        f"{path} is not {encoding} text: byte 0x{err.object[err.start]:02x} {where} cannot be decoded. Give the "
        f"file's encoding: {_fix(f'--encoding {suggestion}', f'encoding={suggestion!r}')}, or save it as UTF-8."
    )


def _split(line: str, sep: str) -> list[str]:
    if sep == WHITESPACE:
        return line.split()
    return next(csv.reader([line], delimiter=sep))


def _sniff_separator(path: Path, lines: list[str], decimal: str | None) -> str:
    candidates = [s for s in SEPARATORS if not (decimal == "," and s == ",")]
    counts = {s: [len(_split(line, s)) for line in lines] for s in candidates + [WHITESPACE]}
    consistent = [s for s in candidates if min(counts[s]) >= 2 and len(set(counts[s])) == 1]
    if len(consistent) > 1:
        shown = " and ".join(_show(s) for s in consistent)
        raise ValueError(
            f"{path}: the separator is ambiguous: {shown} both split every line into the same number of fields. "
            f"Say which one separates the columns: {_fix(f'--sep {consistent[1]!r}', f'sep={consistent[1]!r}')}."
        )
    if consistent:
        return consistent[0]
    whitespace = counts[WHITESPACE]
    if min(whitespace) >= 2 and len(set(whitespace)) == 1 and all(max(counts[s]) == 1 for s in candidates):
        return WHITESPACE
    splitting = [s for s in candidates if max(counts[s]) >= 2]
    if not splitting:
        return candidates[0]  # one column
    sep = max(splitting, key=lambda s: (counts[s][0], max(counts[s])))
    line = next(i for i, c in enumerate(counts[sep]) if c != counts[sep][0])
    comma_hint = (" If the numbers use decimal commas, the columns need another separator (e.g. ';') and "
                  f"{DECIMAL_FIX[',']}." if sep == "," else "")
    raise ValueError(
        f"{path}: with the separator {_show(sep)}, line 1 has {counts[sep][0]} field(s) but line {line + 1} has "
        f"{counts[sep][line]}. Give the separator, e.g. {SEP_FIX}, or quote fields that contain it.{comma_hint}"
    )


def _check_separator(path: Path, lines: list[str], sep: str) -> str:
    """A separator the user gave, refused when it splits no line although another splits every line."""
    if any(len(_split(line, sep)) > 1 for line in lines):
        return sep
    for other in SEPARATORS:
        counts = {len(_split(line, other)) for line in lines}
        if other != sep and len(counts) == 1 and counts.pop() >= 2:
            raise ValueError(
                f"{path}: the separator {_show(sep)} given splits no line, but {_show(other)} splits every line into "
                f"{len(_split(lines[0], other))} fields. Give {_fix(f'--sep {other!r}', f'sep={other!r}')} (or "
                "none: the separator is detected)."
            )
    return sep


def _sniff_decimal(path: Path, rows: list[list[str]]) -> str:
    fields = [(i, f.strip().strip('"')) for i, row in rows for f in row]
    points = [(i, f) for i, f in fields if "." in f and NUMBER["."].match(f)]
    commas = [(i, f) for i, f in fields if "," in f and NUMBER[","].match(f)]
    if points and commas:
        raise ValueError(
            f"{path}: the decimal mark is ambiguous: {points[0][1]!r} (line {points[0][0] + 1}) has a point and "
            f"{commas[0][1]!r} (line {commas[0][0] + 1}) a comma. Give it: {DECIMAL_FIX[',']} or {DECIMAL_FIX['.']}."
        )
    return "," if commas else "."


def _is_number(field: str) -> bool:
    field = field.strip().strip('"')
    return any(pattern.match(field) for pattern in NUMBER.values())


def _check_header(path: Path, first: list[str]) -> None:
    numbers = [f for f in first if _is_number(f)]
    if first and len(numbers) == len(first):
        raise ValueError(
            f"{path}: the first line ({', '.join(first[:4])}{', ...' if len(first) > 4 else ''}) is all numbers, "
            "so it looks like data, not a header (reading it as column names would lose that row). If the file "
            f"has no header, pass {_fix('--no-header', 'header=None')}: the columns are then named x0, x1, ...; "
            f"if those numbers are the column names, pass {_fix('--header', 'header=0')}."
        )


def _parse(path: Path, sep: str, decimal: str, header, encoding: str) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, sep=sep, decimal=decimal, header=header, encoding=encoding, index_col=False,
                               skipinitialspace=True, engine="python" if sep == WHITESPACE else "c")
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path} is empty: no header and no rows.") from err
    except UnicodeDecodeError as err:
        raise _encoding_error(path, encoding, err, offset=None) from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        detail = (f"line {found.group(2)} has {found.group(3)} fields but the lines before it have {found.group(1)}"
                  if found else "some lines have more fields than the header")
        raise ValueError(f"{path}: {detail} (separator {_show(sep)}). Give the separator, e.g. {SEP_FIX}, or "
                         "quote fields that contain it.") from None


def _index_like(frame: pd.DataFrame) -> dict[str, str]:
    """{column: why} for columns that look like a row index, an identifier or nothing, not a measurement."""
    n = len(frame)
    found = {}
    for name in frame.columns:
        values = frame[name]
        if values.isna().all():
            found[name] = "it holds no values (a separator at the end of every line?)"
        elif str(name) == "" or str(name).lower().startswith("unnamed: "):
            found[name] = "its header is empty, as pandas writes its index"
        elif ID_NAMES.search(str(name)):
            found[name] = "its name marks a row index or an identifier"
        elif values.dtype.kind in "iuf" and np.isfinite(values).all() and (values == values.round()).all():
            ints = values.to_numpy(dtype=np.float64)
            if n >= MIN_ROWS_RANGE_INDEX and (np.array_equal(ints, np.arange(n))
                                              or np.array_equal(ints, np.arange(1, n + 1))):
                found[name] = f"it counts the rows ({int(ints[0])}, {int(ints[1])}, ..., {int(ints[-1])})"
            elif n >= MIN_ROWS_UNIQUE_ID and frame.shape[1] > 1 and values.is_unique:
                found[name] = f"its {n} values are distinct integers, like identifiers"
    return found


def _check_not_numeric(path: Path, frame: pd.DataFrame, first_data_line: int, decimal: str) -> None:
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
    choose = (_fix(f"--columns {','.join(numeric)}", f"columns={numeric!r}") if 0 < len(numeric) <= 20
              else COLUMNS_FIX)
    for col in frame.columns:
        if frame[col].dtype.kind in "iuf":
            continue
        bad = pd.to_numeric(frame[col], errors="coerce").isna() & frame[col].notna()
        row = int(np.argmax(bad.to_numpy())) if bad.any() else 0
        text = str(frame[col].iloc[row]).strip()
        if INTEGER.match(text):
            raise ValueError(
                f"{path}: column {col!r} holds the integer {text} (line {row + first_data_line}), too large for "
                f"float64 to represent exactly (above 2**53 = {2**53}). Subtract a common offset first, or leave "
                f"the column out ({COLUMNS_FIX}) if it is an identifier."
            )
        other = "," if decimal == "." else "."
        hint = (f" It looks like a number with a decimal {'comma' if other == ',' else 'point'}: give "
                f"{DECIMAL_FIX[other]}." if NUMBER[other].match(text) else
                f" Choose the numeric columns, e.g. {choose}.")
        raise ValueError(
            f"{path}: column {col!r} is not numeric (line {row + first_data_line} of the file holds "
            f"{frame[col].iloc[row]!r}).{hint}"
        )


def read_csv(path: str | os.PathLike, columns: list[str] | None = None, *, sep: str | None = None,
             decimal: str | None = None, header: int | str | None = "infer",
             encoding: str = "utf-8", missing: bool = False) -> xr.DataArray:
    """Read numeric columns of a CSV file as a ``(obs_id, feature)`` DataArray.

    The separator, decimal mark and header are sniffed and ambiguous files
    refused with the option that settles them (module docstring).

    Parameters
    ----------
    path : str or path-like
    columns : list of str, optional
        The columns to use, in this order (default: all; index and ID columns
        are then refused). Without a header the columns are ``x0, x1, ...``.
    sep : str, optional
        Field separator (default: sniffed). ``r"\\s+"`` for runs of whitespace.
    decimal : {".", ","}, optional
        Decimal mark (default: sniffed).
    header : "infer", 0 or None, default "infer"
        ``"infer"``: the first line is the header unless it is all numbers
        (then an error says which option to pass); ``0``: the first line is
        the header; ``None``: there is no header.
    encoding : str, default "utf-8"
    missing : bool, default False
        Keep empty and NA cells as NaN (for ``fit_em(..., missing="marginalize")``)
        instead of refusing them.

    Returns
    -------
    xarray.DataArray
        float64 values, dims ``(obs_id, feature)``, named after the file;
        attrs ``path`` (messages about these data name the file), ``sep``, ``decimal``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; empty; undecodable; ambiguous separator or decimal mark;
        a first line of numbers taken for a header; index or ID columns;
        unknown column; non-numeric column; integers float64 would round;
        missing values. Each names the file, the line or column, and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such data file: {path}.")
    if not path.is_file():
        raise IsADirectoryError(f"{path} is not a file; give the path of a CSV file.")
    if header not in ("infer", 0, None):
        raise ValueError(f"header must be 'infer', 0 (the first line) or None (no header); got {header!r}.")
    if decimal not in (None, ".", ","):
        raise ValueError(f"decimal must be '.' or ','; got {decimal!r}.")
    lines = _head_lines(path, encoding)
    if not lines:
        raise ValueError(f"{path} is empty: no header and no rows.")
    sep = _check_separator(path, lines, sep) if sep else _sniff_separator(path, lines, decimal)
    rows = [(i, _split(line, sep)) for i, line in enumerate(lines)]
    decimal = decimal or _sniff_decimal(path, rows[1:] if len(rows) > 1 else rows)
    if header == "infer":
        _check_header(path, rows[0][1])
    frame = _parse(path, sep, decimal, 0 if header == "infer" else header, encoding)
    if header is None:
        frame.columns = default_feature_names(frame.shape[1])
    if frame.shape[0] == 0:
        raise ValueError(f"{path} has a header but no data rows.")
    frame.columns = [str(c) for c in frame.columns]
    if columns:
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise ValueError(f"{path} has no column(s) {summarize_values(unknown)}; its columns are "
                             f"{summarize_values(list(frame.columns))}.")
        frame = frame[list(columns)]
    else:
        _refuse_index_columns(path, frame)
    first_data_line = 1 if header is None else 2
    _check_not_numeric(path, frame, first_data_line, decimal)
    for col in frame.columns:
        check_exact_integers(frame[col].to_numpy(), str(path), col)
    na = frame.isna().to_numpy()
    if na.any() and not missing:
        i, j = np.argwhere(na)[0]
        raise ValueError(
            f"{path}: missing value in column {frame.columns[j]!r} at line {int(i) + first_data_line} of the file "
            f"({int(na.sum())} missing in total). {MISSING_HINT}"
        )
    return xr.DataArray(
        frame.to_numpy(dtype=np.float64), dims=(OBS_DIM, FEATURE_DIM),
        coords={OBS_DIM: np.arange(len(frame)), FEATURE_DIM: list(frame.columns)},
        name=path.stem, attrs={PATH_ATTR: str(path), "sep": sep, "decimal": decimal},
    )


def _refuse_index_columns(path: Path, frame: pd.DataFrame) -> None:
    flagged = _index_like(frame)
    if not flagged:
        return
    keep = [c for c in frame.columns if c not in flagged]
    why = "; ".join(f"{c!r}: {reason}" for c, reason in flagged.items())
    choose = (f"choose the feature columns with {_fix('--columns ' + ','.join(keep), f'columns={keep!r}')}"
              if keep and len(keep) <= 20 else f"choose the feature columns, e.g. {COLUMNS_FIX}")
    raise ValueError(
        f"{path}: column(s) {summarize_values(list(flagged))} do not look like measurements ({why}); a mixture "
        f"fitted on them would cluster row numbers or identifiers. To fit them anyway or leave them out, {choose}."
    )
