"""Readers and writers for the two click formats, with validation and atomic writes.

Formats
-------
- **YooChoose clicks** (``yoochoose-clicks.dat`` of the RecSys Challenge 2015): comma-separated, no header, four
  fields per line: ``SessionID,Timestamp,ItemID,Category``, e.g. ``1,2014-04-07T10:51:09.277Z,214536502,0``.
  The timestamp is ISO 8601 in UTC (ending in ``Z``); the category is not used by GRU4Rec and is not validated.
- **GRU4Rec sessions** (``rsc15_train_full.txt`` and friends): TAB-separated with the header
  ``SessionId<TAB>ItemId<TAB>Time``; ``Time`` is unix seconds (float).

Both readers return a DataFrame with ``SessionId`` (int64), ``ItemId`` (int64) and ``Time`` (float64 unix seconds).

Speed: files are parsed with pyarrow's multi-threaded CSV reader (a 33M-click file in a few seconds, timestamps
included); ``pandas.to_datetime`` on the same file takes close to a minute. Writers format the rows with numpy digit
arithmetic in chunks (tens of millions of rows in a few seconds), falling back to pyarrow's CSV writer for values the
fast formatter does not cover.

Errors: any malformed input raises :class:`DataFormatError` naming the file, the 1-based line (as a text editor
counts it), the column and what was expected. The fast path only tells *that* a file is bad; a second, slower
line-by-line pass then finds *where* (this pass runs only when something is wrong). What is read before a format
check is bounded: a line longer than :data:`MAX_LINE_BYTES` is an error (a 2 GB file without a newline is rejected
after reading 1 MiB of it, not read whole). A ``.gz`` / ``.bz2`` file that cannot be decompressed is a
:class:`DataFormatError` naming it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import re
import tempfile
from typing import IO, Iterator, Optional, Sequence, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

SESSION_KEY = "SessionId"
ITEM_KEY = "ItemId"
TIME_KEY = "Time"
SESSION_COLUMNS = (SESSION_KEY, ITEM_KEY, TIME_KEY)
SESSIONS_HEADER = "\t".join(SESSION_COLUMNS)

CLICK_FIELDS = ("SessionID", "Timestamp", "ItemID", "Category")

PathLike = Union[str, "os.PathLike[str]"]
MAX_LINE_BYTES = 1 << 20  # the longest line a reader looks at before it checks the format (a click line is ~50 bytes)

__all__ = [
    "DataFormatError",
    "atomic_write",
    "read_clicks",
    "write_clicks",
    "read_sessions",
    "write_sessions",
    "format_clicks_bytes",
    "format_sessions_bytes",
    "write_sessions_arrays",
    "SESSION_COLUMNS",
    "SESSIONS_HEADER",
]


class DataFormatError(ValueError):
    """A data file does not have the expected format.

    The message reads ``FILE:LINE: column N (NAME): expected ..., found '...'``; the parts are also attributes
    (``path``, ``line``, ``column``, ``expected``, ``found``), any of which may be None when it does not apply.
    """

    def __init__(
        self,
        path: PathLike,
        line: Optional[int],
        column: Optional[Union[int, str]],
        expected: str,
        found: Optional[str] = None,
    ) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.column = column
        self.expected = expected
        self.found = found
        where = self.path if line is None else f"{self.path}:{line}"
        parts = [where + ":"]
        if column is not None:
            parts.append(f"column {column}:")
        parts.append(f"expected {expected}")
        message = " ".join(parts)
        if found is not None:
            message += f", found {found}"
        super().__init__(message)


# ----------------------------------------------------------------------------------------------------------------
# Atomic writes


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``, on failure remove it.

    Readers of ``path`` therefore see either the old file or the complete new one, never a half-written file.
    A ``path`` that is a folder, or whose folder is missing, raises an ``OSError`` naming ``path`` (not the temporary
    file). ``mode`` is ``"w"`` (text) or ``"wb"`` (binary).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a folder, expected a file name to write")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: cannot write it, the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        if mode == "wb":
            handle = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding, newline="")
        with handle:
            yield handle
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(error, OSError) and error.errno is not None and error.filename is None:
            # a write that failed (a full disk: ENOSPC) names no file: name the one being written
            raise OSError(error.errno, error.strerror or os.strerror(error.errno), path) from error
        raise


# ----------------------------------------------------------------------------------------------------------------
# Fast formatting: rows as fixed-width digit matrices, padding bytes removed


def _lut(texts: Sequence[str], width: int) -> np.ndarray:
    """A table of ASCII strings, each padded with 0 bytes to ``width`` (a multiple of 4), as (len, width) uint8."""
    table = np.zeros((len(texts), width), dtype=np.uint8)
    for i, text in enumerate(texts):
        raw = text.encode("ascii")
        table[i, width - len(raw) :] = np.frombuffer(raw, dtype=np.uint8)
    return table


# Four-digit groups as uint32 (four ASCII bytes): zero-padded ("0042") for groups below the leading one, unpadded
# ("\0\0" "42") for the leading group, nothing at all for 0 above the leading group. 0 bytes are deleted from the
# output. The lowest group is different only in that 0 is "0".
_PADDED = _lut([f"{i:04d}" for i in range(10000)], 4)
_UNPADDED = _lut([str(i) if i else "" for i in range(10000)], 4)
_UPPER_LUT = np.concatenate([_PADDED, _UNPADDED]).view(np.uint32).ravel()
_UNPADDED[0, 3] = ord("0")
_LOWEST_LUT = np.concatenate([_PADDED, _UNPADDED]).view(np.uint32).ravel()
_CLOCK_LUT = _lut([f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)], 8)
_CLOCK_LUT = _CLOCK_LUT.view(np.uint64).ravel()  # seconds of the day -> "HH:MM:SS"
_MILLI_LUT = _lut([f".{i:03d}" for i in range(1000)], 4).view(np.uint32).ravel()  # -> ".mmm"


def _digits(values: np.ndarray) -> np.ndarray:
    """Decimal text of non-negative int64 values as an (n, 4 * groups) uint8 matrix, left-padded with 0 bytes."""
    values = np.asarray(values, dtype=np.int64)
    top = int(values.max()) if len(values) else 0
    n_groups = max(1, (len(str(top)) + 3) // 4)
    out = np.empty((n_groups, len(values)), dtype=np.uint32)
    rest = values
    for g in range(n_groups - 1, -1, -1):
        rest, low = np.divmod(rest, 10000)
        low += (rest == 0) * 10000
        np.take(_LOWEST_LUT if g == n_groups - 1 else _UPPER_LUT, low, out=out[g])
    return out.T.copy().view(np.uint8)


def _const(text: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (n, len(text)))


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day of days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm), vectorised."""
    z = days + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _iso_ms(ms: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of unix milliseconds (years 0..9999) as an (n, 32) uint8 matrix with 0 padding."""
    days, rest = np.divmod(ms, 86_400_000)
    first = int(days.min()) if len(days) else 0
    span = np.arange(first, (int(days.max()) + 1) if len(days) else 1, dtype=np.int64)
    year, month, day = _civil_from_days(span)
    dates = _lut([f"{y:04d}-{m:02d}-{d:02d}T" for y, m, d in zip(year, month, day)], 16).view(np.uint64)
    second, milli = np.divmod(rest, 1000)
    parts = [
        np.take(dates, days - first, axis=0).view(np.uint8),
        np.take(_CLOCK_LUT, second)[:, None].view(np.uint8),
        np.take(_MILLI_LUT, milli)[:, None].view(np.uint8),
        _const("Z", len(ms)),
    ]
    return np.concatenate(parts, axis=1)


def _join_rows(parts: Sequence[np.ndarray]) -> bytes:
    return np.concatenate(parts, axis=1).tobytes().translate(None, b"\x00")


def _to_ms(times: np.ndarray) -> Optional[np.ndarray]:
    """Unix seconds as int64 milliseconds when every value is a finite multiple of 1 ms in a sane range, else None.

    Works through the array in cache-sized blocks (one pass instead of several full-size temporaries).
    """
    times = np.asarray(times, dtype=np.float64)
    ms = np.empty(len(times), dtype=np.int64)
    block = 1 << 16
    scaled = np.empty(min(block, len(times)), dtype=np.float64)
    for start in range(0, len(times), block):
        part = times[start : start + block]
        buf = scaled[: len(part)]
        if not (part.min() >= 0 and part.max() < 253402300800):  # NaN, +-inf, before 1970, year 10000 or later
            return None
        np.multiply(part, 1000.0, out=buf)
        np.rint(buf, out=buf)
        out = ms[start : start + block]
        out[...] = buf
        np.divide(out, 1000.0, out=buf)
        if not np.array_equal(buf, part):
            return None
    return ms


_CHUNK = 1 << 18


def _chunked(format_chunk, n_rows: int) -> Iterator[bytes]:
    """``format_chunk(slice)`` for consecutive slices of ``n_rows``, formatted by a small thread pool, in order.

    numpy releases the GIL in the heavy steps, so two threads roughly halve the time on a 2-core machine.
    """
    slices = [slice(start, start + _CHUNK) for start in range(0, n_rows, _CHUNK)]
    if len(slices) <= 1:
        yield from (format_chunk(sl) for sl in slices)
        return
    workers = max(1, min(4, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending: collections.deque = collections.deque()
        for sl in slices:
            pending.append(pool.submit(format_chunk, sl))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def format_sessions_bytes(sessions: np.ndarray, items: np.ndarray, times: np.ndarray) -> Iterator[bytes]:
    """Body lines ``SessionId<TAB>ItemId<TAB>Time`` as byte chunks (no header); Time with 3 decimals.

    Requires non-negative ids and times that are exact multiples of 1 ms (the yoochoose resolution); callers fall
    back to pyarrow's writer otherwise (see :func:`write_sessions`).
    """
    ms = _to_ms(times)
    assert ms is not None

    def chunk(sl: slice) -> bytes:
        n = len(sessions[sl])
        secs, frac = np.divmod(ms[sl], 1000)
        return _join_rows(
            [
                _digits(sessions[sl]), _const("\t", n), _digits(items[sl]), _const("\t", n),
                _digits(secs), np.take(_MILLI_LUT, frac)[:, None].view(np.uint8), _const("\n", n),
            ]
        )  # fmt: skip

    return _chunked(chunk, len(sessions))


def format_clicks_bytes(
    sessions: np.ndarray, times: np.ndarray, items: np.ndarray, categories: Optional[np.ndarray] = None
) -> Iterator[bytes]:
    """YooChoose lines ``SessionID,YYYY-MM-DDTHH:MM:SS.mmmZ,ItemID,Category`` as byte chunks.

    ``categories`` are non-negative ints (written as numbers); None writes ``0`` (unknown category) everywhere.
    """
    ms = _to_ms(times)
    if ms is None:
        raise ValueError("click times must be finite unix seconds in years 1970..9999 with 1 ms resolution")

    def chunk(sl: slice) -> bytes:
        n = len(sessions[sl])
        cat = _const("0", n) if categories is None else _digits(categories[sl])
        return _join_rows(
            [
                _digits(sessions[sl]), _const(",", n), _iso_ms(ms[sl]), _const(",", n),
                _digits(items[sl]), _const(",", n), cat, _const("\n", n),
            ]
        )  # fmt: skip

    return _chunked(chunk, len(sessions))


# ----------------------------------------------------------------------------------------------------------------
# Validation helpers (the slow pass that locates an error)

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
# ISO 8601 as pyarrow accepts it: date, 'T' or space, time with optional fraction, 'Z' or +hh:mm / +hhmm / +hh.
_ISO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$"
)
_NULL_WORDS = {"", "nan", "NaN", "NAN", "-nan", "-NaN", "null", "NULL", "NA", "N/A", "n/a", "None", "#N/A"}


def _describe(value: str) -> str:
    if value == "":
        return "an empty field"
    if len(value) > 60:
        value = value[:57] + "..."
    return repr(value)


def _check_int(path, line_no, col, name, value) -> None:
    if not _INT_RE.match(value):
        raise DataFormatError(path, line_no, f"{col} ({name})", f"an integer {name}", _describe(value))
    # more than 19 digits never fits (and int() refuses strings of over 4300 digits)
    if len(value.lstrip("+-").lstrip("0")) > 19 or not -(2**63) <= int(value) < 2**63:
        raise DataFormatError(
            path, line_no, f"{col} ({name})", f"an integer {name} that fits in 64 bits", _describe(value)
        )


def _check_float(path, line_no, col, name, value) -> None:
    try:
        number = float(value)
    except ValueError:
        raise DataFormatError(path, line_no, f"{col} ({name})", f"a number ({name})", _describe(value)) from None
    if value.strip() != value or not np.isfinite(number):
        raise DataFormatError(path, line_no, f"{col} ({name})", f"a finite number ({name})", _describe(value))


def _check_timestamp(path, line_no, col, name, value) -> None:
    ok = bool(_ISO_RE.match(value))
    if ok:
        try:
            np.datetime64(value[:10])
            hh, mm = int(value[11:13]), int(value[14:16])
            ss = int(value[17:19]) if len(value) > 18 and value[16] == ":" else 0
            ok = hh < 24 and mm < 60 and ss < 61
        except ValueError:
            ok = False
        if ok and ss == 60:
            raise DataFormatError(
                path, line_no, f"{col} ({name})", "a timestamp with seconds 00-59 (leap seconds such as :60 are "
                "not supported; use :59.999)", _describe(value),
            )  # fmt: skip
    if not ok:
        raise DataFormatError(
            path, line_no, f"{col} ({name})", "an ISO-8601 UTC timestamp like 2014-04-07T10:51:09.277Z",
            _describe(value),
        )  # fmt: skip


def _is_compressed(path: PathLike) -> bool:
    return os.fspath(path).endswith((".gz", ".bz2"))


@contextlib.contextmanager
def _decompression_errors(path: PathLike) -> Iterator[None]:
    """Turn the errors of a ``.gz`` / ``.bz2`` file that cannot be decompressed into a :class:`DataFormatError`
    naming the file (gzip raises BadGzipFile / EOFError / zlib.error, bz2 a bare OSError, pyarrow an OSError or
    ArrowInvalid naming the codec). Real OS errors (with an errno) pass through."""
    import zlib

    try:
        yield
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid) as error:
        if not _is_compressed(path) or (isinstance(error, OSError) and error.errno is not None):
            raise
        if isinstance(error, pa.ArrowInvalid) and not re.search(r"gzip|bz2|zlib|compress|codec", str(error), re.I):
            raise
        kind, suffix = ("gzip", ".gz") if os.fspath(path).endswith(".gz") else ("bzip2", ".bz2")
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataFormatError(path, None, None, f"a valid {kind} file (the name ends in {suffix})",
                              f"a corrupt or truncated one ({first[:200]})") from None  # fmt: skip


def _read_line(handle: IO[bytes], path: PathLike, line_no: int) -> bytes:
    """One line of at most :data:`MAX_LINE_BYTES` (its newline included); a longer one is a DataFormatError."""
    raw = handle.readline(MAX_LINE_BYTES + 1)
    if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
        raise DataFormatError(path, line_no, None, f"lines of at most {MAX_LINE_BYTES >> 20} MiB",
                              f"a longer line (no line break in its first {MAX_LINE_BYTES:,} bytes)")  # fmt: skip
    return raw


def _open_binary(path: PathLike) -> IO[bytes]:
    """The file's bytes, decompressed when its name says gzip or bzip2 (as pyarrow's readers do)."""
    name = os.fspath(path)
    if name.endswith(".gz"):
        import gzip

        return gzip.open(name, "rb")
    if name.endswith(".bz2"):
        import bz2

        return bz2.open(name, "rb")
    return open(name, "rb")


def _arrow_message(error: Exception, names: Sequence[str]) -> str:
    """pyarrow's first error line with its 0-based ``column #N`` as ``column N+1 (NAME)``."""
    text = str(error).splitlines()[0]

    def column(match: re.Match) -> str:
        index = int(match.group(1))
        label = f" ({names[index]})" if index < len(names) else ""
        return f"column {index + 1}{label}"

    return re.sub(r"column #(\d+)", column, text)


def _iter_lines(path: PathLike, start_line: int = 1) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line, each read with the :data:`MAX_LINE_BYTES` bound."""
    with _decompression_errors(path), _open_binary(path) as handle:
        line_no = 0
        while True:
            line_no += 1
            raw = _read_line(handle, path, line_no)
            if not raw:
                return
            if line_no >= start_line:
                yield line_no, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _check_empty(path: PathLike, what: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    if os.path.isdir(path):
        raise DataFormatError(path, None, None, f"a file ({what}), not a folder")
    with _decompression_errors(path), _open_binary(path) as handle:
        while True:  # stop at the first byte that is not white space (a file of only spaces is read in blocks)
            block = handle.read(1 << 16)
            if not block:
                raise DataFormatError(path, 1, None, what, "an empty file")
            if block.strip() != b"":
                return


# ----------------------------------------------------------------------------------------------------------------
# YooChoose clicks


def _locate_clicks_error(path: PathLike) -> None:
    names = CLICK_FIELDS
    for line_no, text in _iter_lines(path):
        if text == "":
            continue
        fields = text.split(",")
        if len(fields) != 4:
            hint = " (the clicks file has no header)" if line_no == 1 and not text[:1].isdigit() else ""
            raise DataFormatError(
                path, line_no, None, "4 comma-separated fields SessionID,Timestamp,ItemID,Category" + hint,
                f"{len(fields)} field{'s' if len(fields) != 1 else ''}: {_describe(text)}",
            )  # fmt: skip
        if line_no == 1 and not _INT_RE.match(fields[0]) and not _ISO_RE.match(fields[1]):
            raise DataFormatError(
                path, 1, f"1 ({names[0]})", "a click (the clicks file has no header)", _describe(text)
            )
        _check_int(path, line_no, 1, names[0], fields[0])
        _check_timestamp(path, line_no, 2, names[1], fields[1])
        _check_int(path, line_no, 3, names[2], fields[2])


def read_clicks(path: PathLike) -> pd.DataFrame:
    """Read a yoochoose clicks file into ``SessionId``, ``ItemId``, ``Time`` (float64 unix seconds, UTC).

    Rows keep the file's order. Raises :class:`DataFormatError` for any malformed line, FileNotFoundError when the
    file does not exist.
    """
    sessions, items, times = _read_clicks_arrays(path)
    return pd.DataFrame({SESSION_KEY: sessions, ITEM_KEY: items, TIME_KEY: times}, copy=False)


# The table's buffers come from the C allocator, not arrow's default pool (mimalloc / jemalloc): freed column by
# column, they go straight back to malloc, which hands the same memory to the numpy copies. With the default pool the
# copies need fresh pages, and first-touch page faults cost ~2 s per GiB on a virtual machine (measured: reading a
# 31M-click file took 7.2 s with the default pool, 5.0 s with this one).
_RELEASING_POOL = pa.system_memory_pool()


def _read_clicks_arrays(path: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_empty(path, "clicks 'SessionID,Timestamp,ItemID,Category'")
    read_options = pacsv.ReadOptions(column_names=list(CLICK_FIELDS), block_size=1 << 24)
    parse_options = pacsv.ParseOptions(delimiter=",", quote_char=False)
    convert_options = pacsv.ConvertOptions(
        column_types={
            "SessionID": pa.int64(),
            "Timestamp": pa.timestamp("ms", tz="UTC"),
            "ItemID": pa.int64(),
            "Category": pa.string(),
        },
        include_columns=["SessionID", "Timestamp", "ItemID"],
    )
    try:
        with _decompression_errors(path):
            table = pacsv.read_csv(
                os.fspath(path),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
                memory_pool=_RELEASING_POOL,
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _locate_clicks_error(path)
        raise DataFormatError(
            path, None, None, "a valid yoochoose clicks file", _arrow_message(error, CLICK_FIELDS)
        ) from None
    if any(table.column(i).null_count for i in range(3)):
        _locate_clicks_error(path)
        raise DataFormatError(path, None, None, "no missing values")
    # convert one column at a time and drop it from the table, so arrow's buffers are freed as we go
    sessions = _column_numpy(table, "SessionID", np.int64)
    table = table.drop_columns(["SessionID"])
    items = _column_numpy(table, "ItemID", np.int64)
    table = table.drop_columns(["ItemID"])
    times = _chunked_numpy(table.column("Timestamp").cast(pa.int64()), np.float64)
    del table
    times /= 1000.0
    return sessions, items, times


def _chunked_numpy(column: pa.ChunkedArray, dtype) -> np.ndarray:
    out = np.empty(len(column), dtype=dtype)
    pos = 0
    for chunk in column.chunks:
        out[pos : pos + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        pos += len(chunk)
    return out


def _column_numpy(table: pa.Table, name: str, dtype) -> np.ndarray:
    return _chunked_numpy(table.column(name), dtype)


def write_clicks(df: pd.DataFrame, path: PathLike) -> None:
    """Write ``SessionId``, ``ItemId``, ``Time`` (and an optional int ``Category``) in the yoochoose format, atomically.

    Times are written with millisecond resolution (rounded), as in the original file.
    """
    _require_columns(df, SESSION_COLUMNS, "write_clicks")
    sessions = df[SESSION_KEY].to_numpy(dtype=np.int64)
    items = df[ITEM_KEY].to_numpy(dtype=np.int64)
    times = np.round(df[TIME_KEY].to_numpy(dtype=np.float64) * 1000.0) / 1000.0
    categories = df["Category"].to_numpy(dtype=np.int64) if "Category" in df.columns else None
    for name, values in ((SESSION_KEY, sessions), (ITEM_KEY, items), ("Category", categories)):
        if values is not None and len(values) and values.min() < 0:
            raise ValueError(f"write_clicks: {name} must be non-negative")
    with atomic_write(path, "wb") as handle:
        for chunk in format_clicks_bytes(sessions, times, items, categories):
            handle.write(chunk)


# ----------------------------------------------------------------------------------------------------------------
# GRU4Rec TAB-separated sessions


def _locate_sessions_error(path: PathLike, order: Sequence[str]) -> None:
    checks = {SESSION_KEY: _check_int, ITEM_KEY: _check_int, TIME_KEY: _check_float}
    for line_no, text in _iter_lines(path, start_line=2):
        if text == "":
            continue
        fields = text.split("\t")
        if len(fields) != 3:
            raise DataFormatError(
                path, line_no, None, "3 TAB-separated fields " + "<TAB>".join(order),
                f"{len(fields)} field{'s' if len(fields) != 1 else ''}: {_describe(text)}",
            )  # fmt: skip
        for col, (name, value) in enumerate(zip(order, fields), start=1):
            checks[name](path, line_no, col, name, value)


def _read_header(path: PathLike) -> list[str]:
    with _decompression_errors(path), _open_binary(path) as handle:
        first = _read_line(handle, path, 1).decode("utf-8", errors="replace").rstrip("\r\n")
    names = first.split("\t")
    if sorted(names) != sorted(SESSION_COLUMNS):
        found = _describe(first)
        if len(names) == 1 and "," in first:
            found += " (comma-separated? the GRU4Rec format uses TABs)"
        raise DataFormatError(path, 1, None, f"the header {SESSIONS_HEADER!r}", found)
    return names


def read_sessions(path: PathLike) -> pd.DataFrame:
    """Read a GRU4Rec TSV file (header ``SessionId<TAB>ItemId<TAB>Time``, any column order) in file order.

    Raises :class:`DataFormatError` for a missing or wrong header, a wrong number of fields, a non-numeric id or
    time, or a missing / NaN / infinite value; FileNotFoundError when the file does not exist.
    """
    _check_empty(path, f"the header {SESSIONS_HEADER!r}")
    names = _read_header(path)
    types = {SESSION_KEY: pa.int64(), ITEM_KEY: pa.int64(), TIME_KEY: pa.float64()}
    try:
        with _decompression_errors(path):
            table = pacsv.read_csv(
                os.fspath(path),
                read_options=pacsv.ReadOptions(block_size=1 << 24),
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                convert_options=pacsv.ConvertOptions(column_types=types),
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        _locate_sessions_error(path, names)
        raise DataFormatError(path, None, None, "a valid GRU4Rec TSV file", _arrow_message(error, names)) from None
    if any(table.column(name).null_count for name in names):
        _locate_sessions_error(path, names)
        raise DataFormatError(path, None, None, "no missing values")
    times = _column_numpy(table, TIME_KEY, np.float64)
    if len(times) and not np.isfinite(times).all():
        _locate_sessions_error(path, names)
        raise DataFormatError(path, None, TIME_KEY, "finite times")
    return pd.DataFrame(
        {
            SESSION_KEY: _column_numpy(table, SESSION_KEY, np.int64),
            ITEM_KEY: _column_numpy(table, ITEM_KEY, np.int64),
            TIME_KEY: times,
        },
        copy=False,
    )


def _require_columns(df: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: the frame lacks column(s) {missing}; expected {list(columns)}")


def write_sessions(df: pd.DataFrame, path: PathLike) -> None:
    """Write ``SessionId``, ``ItemId``, ``Time`` as GRU4Rec TSV with a header, atomically, in the frame's order.

    Times at millisecond resolution (as from yoochoose) are written with exactly three decimals; other times are
    written by pyarrow with the shortest text that reads back to the same float.
    """
    _require_columns(df, SESSION_COLUMNS, "write_sessions")
    sessions = df[SESSION_KEY].to_numpy(dtype=np.int64)
    items = df[ITEM_KEY].to_numpy(dtype=np.int64)
    times = df[TIME_KEY].to_numpy(dtype=np.float64)
    if len(times) and not np.isfinite(times).all():
        raise ValueError("write_sessions: Time holds NaN or infinite values")
    fast = _to_ms(times) is not None and (len(sessions) == 0 or (sessions.min() >= 0 and items.min() >= 0))
    with atomic_write(path, "wb") as handle:
        handle.write((SESSIONS_HEADER + "\n").encode("ascii"))
        if fast:
            for chunk in format_sessions_bytes(sessions, items, times):
                handle.write(chunk)
        else:
            table = pa.table({SESSION_KEY: sessions, ITEM_KEY: items, TIME_KEY: times})
            pacsv.write_csv(
                table,
                handle,
                pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
            )


_RELEASE_BYTES = 64 << 20


def _release_written(handle: IO, start: int) -> int:
    """Flush ``handle``, write its bytes from ``start`` to disk and drop them from the page cache; the new position.

    Gigabytes of output otherwise fill the page cache with new pages, and on a virtual machine first-touch pages cost
    ~3 s per GiB (measured: 1 GiB written in 3.1 s plainly, in 1.1 s releasing every 64 MiB, which recycles the same
    few pages). Only the cache hint is best-effort; a failed ``fdatasync`` is a write error and raises.
    """
    handle.flush()
    end = handle.tell()
    fd = handle.fileno()
    os.fdatasync(fd)
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
    return end


def _select_lines(text: bytes, keep: np.ndarray) -> bytes:
    """The lines of ``text`` (each ending in a newline) where ``keep`` is True, as bytes.

    The kept lines are copied as runs of consecutive lines, so a file that holds nearly all rows of a chunk (or a
    few session blocks of it) costs a handful of slices rather than a second formatting pass.
    """
    if keep.all():
        return text
    if not keep.any():
        return b""
    ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10) + 1  # byte after each newline
    flags = np.zeros(len(keep) + 2, dtype=np.int8)
    flags[1:-1] = keep
    edges = np.diff(flags)
    first = np.flatnonzero(edges == 1)  # first line of each run
    last = np.flatnonzero(edges == -1)  # one past the last line of each run
    begin = np.where(first > 0, ends[first - 1], 0)
    view = memoryview(text)
    return b"".join([view[b:e] for b, e in zip(begin.tolist(), ends[last - 1].tolist())])


def write_sessions_arrays(
    sessions: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    outputs: Sequence[tuple[PathLike, Optional[np.ndarray]]],
    item_codes: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> None:
    """Write several GRU4Rec TSV files, each a row subset (boolean mask, None = all rows) of the same arrays.

    Rows are formatted once per chunk and shared by every file that holds them (``train_full`` and ``train_tr``
    share almost all rows), so writing both costs little more than writing one. Every file is written atomically.
    ``item_codes`` = (codes, uniques) with ``uniques[codes] == items`` (e.g. from ``pd.factorize``) lets the item
    column be copied from a per-item table instead of being formatted row by row.
    """
    sessions = np.asarray(sessions, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    n = len(sessions)
    masks = [np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool) for _, mask in outputs]
    ms = _to_ms(times)
    fast = ms is not None and (n == 0 or (sessions.min() >= 0 and items.min() >= 0))
    if not fast:
        for (path, _), mask in zip(outputs, masks):
            frame = pd.DataFrame({SESSION_KEY: sessions[mask], ITEM_KEY: items[mask], TIME_KEY: times[mask]})
            write_sessions(frame, path)
        return

    item_table = None
    if item_codes is not None:
        codes, uniques = item_codes
        table = _digits(np.asarray(uniques, dtype=np.int64))
        item_table = (np.ascontiguousarray(table).view(np.dtype((np.void, table.shape[1]))).ravel(), codes)

    def item_text(rows: np.ndarray) -> np.ndarray:
        if item_table is None:
            return _digits(items[rows])
        table, codes = item_table
        return np.take(table, codes[rows]).view(np.uint8).reshape(len(rows), -1)

    def session_text(rows: np.ndarray) -> np.ndarray:
        values = sessions[rows]
        if len(values) < 2:
            return _digits(values)
        new = np.empty(len(values), dtype=bool)
        new[0] = True
        np.not_equal(values[1:], values[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        if len(starts) * 2 > len(values):
            return _digits(values)
        return np.repeat(_digits(values[starts]), np.diff(np.append(starts, len(values))), axis=0)

    # whole seconds = high part * 10**4 + four padded digits; the high parts span a small range (a 6-month data set:
    # ~1600 values), so they are copied from a table instead of being formatted digit group by digit group
    high_table = None
    if n:
        low_high, top_high = int(ms.min()) // 10_000_000, int(ms.max()) // 10_000_000
        if low_high > 0 and top_high - low_high < 1 << 20:
            table = _digits(np.arange(low_high, top_high + 1, dtype=np.int64))
            high_table = (np.ascontiguousarray(table).view(np.dtype((np.void, table.shape[1]))).ravel(), low_high)

    def seconds_text(secs: np.ndarray) -> list[np.ndarray]:
        if high_table is None:
            return [_digits(secs)]
        table, low_high = high_table
        high, low = np.divmod(secs, 10000)
        high -= low_high
        return [
            np.take(table, high).view(np.uint8).reshape(len(secs), -1),
            np.take(_UPPER_LUT, low)[:, None].view(np.uint8),  # "0042": below the leading group, zero-padded
        ]

    def chunk(sl: slice) -> list[bytes]:
        parts = [mask[sl] for mask in masks]
        union = np.logical_or.reduce(parts) if len(parts) > 1 else parts[0]
        rows = np.flatnonzero(union) + sl.start
        secs, frac = np.divmod(ms[rows], 1000)
        m = len(rows)
        matrix = np.concatenate(
            [
                session_text(rows), _const("\t", m), item_text(rows), _const("\t", m),
                *seconds_text(secs), np.take(_MILLI_LUT, frac)[:, None].view(np.uint8), _const("\n", m),
            ],
            axis=1,
        )  # fmt: skip
        text = matrix.tobytes().translate(None, b"\x00")  # once per chunk, shared by every file
        del matrix
        return [_select_lines(text, part[union]) for part in parts]

    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(atomic_write(path, "wb")) for path, _ in outputs]
        for handle in handles:
            handle.write((SESSIONS_HEADER + "\n").encode("ascii"))
        released = [handle.tell() for handle in handles]
        for pieces in _chunked(chunk, n):
            for k, (handle, piece) in enumerate(zip(handles, pieces)):
                handle.write(piece)
                if handle.tell() - released[k] >= _RELEASE_BYTES:
                    released[k] = _release_written(handle, released[k])
