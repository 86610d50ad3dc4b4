"""The run folder: one module owns its whole life (create, lock, fingerprint, resume, logs, read back).

A run folder holds ``config.json`` (the Config, ``n_items``, the training data's fingerprint, device, versions),
``items.tsv`` (ItemMap), ``item_support.npy``, ``checkpoints/`` (``epoch-N``, one per epoch), ``train.log`` (the
seed's format), ``train.jsonl``, ``tensorboard/`` and, after a test, ``metrics.json``. What it guarantees:

- **One writer.** Every writer (train, resume, seed, export into a run folder) holds ``.lock`` (an exclusive
  ``fcntl.flock`` on a file naming the holder's pid and host). A lock left by a killed process is stale: the kernel
  drops the flock with its holder, and where flock is not supported the recorded pid is checked instead.
- **Nothing the kit did not write is removed.** Replacing a run moves the kit's files (:data:`RUN_FILES`) into
  ``replaced-<UTC time>/`` inside the folder; nothing is deleted. A new run refuses a folder that holds any of
  those names without ``config.json`` (files of someone else, or a run moved aside half-way): it would truncate or
  reuse them. Everything (configuration, device, distribution) is checked before anything is moved.
- **No write through a link, no output over a run's files.** The kit's files in the folder (:data:`RUN_FILES`,
  ``.lock`` and the entries of ``checkpoints/`` and ``tensorboard/``) must not be symbolic links: the lock and the
  logs are opened with ``O_NOFOLLOW`` (and must be regular files with one name), the rest is checked before a run
  starts. An output path of another command (``--json``, an export's ``--out``) that resolves to a run folder, to
  one of its own entries or into one is refused (:func:`refuse_run_output`).
- **Files are checked against config.json.** ``items.tsv`` and ``item_support.npy`` must match the fingerprint in
  ``config.json`` (item ids, item counts) wherever they are read (:meth:`RunFolder.read_item_map`,
  :meth:`RunFolder.read_support`).
- **Epoch records before the checkpoint.** ``train.jsonl``'s epoch record and TensorBoard's epoch scalars are written
  (and flushed) before the checkpoint that marks the epoch done, so a kill between the two loses no record: the
  resume cuts the record of an epoch whose checkpoint is missing and trains that epoch again.
- **config.json describes the checkpoints.** A resume rewrites it only once it has trained an epoch (with this
  call's ``n_epochs``, device and versions); a resume with nothing left to train (``--n_epochs`` at or below the
  epochs done) leaves it as it was, ``n_epochs`` and ``device.ran_on`` included.
- **Resume checks what it resumes.** The checkpoints are found from the files (``epoch-N.index`` with its data), not
  from ``checkpoints/checkpoint``; the configuration (except ``n_epochs``, ``device``) and the training data's
  fingerprint (item map, item counts, events) must match the run's, else the error names what differs.
- **Logs match the checkpoint.** On resume ``train.log``, ``train.jsonl`` and the TensorBoard events are cut back to
  the checkpointed step, so no step is logged twice; ``train.jsonl`` is strict JSON (non-finite numbers -> null).
- **Reads fail clearly.** A ``config.json`` that is not a JSON object, a checkpoint that cannot be read or that does
  not fit the configuration raise :class:`RunFolderError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from gru4rec.io import atomic_write

RUN_FILES = (
    "config.json", "items.tsv", "item_support.npy", "checkpoints", "train.log", "train.jsonl", "tensorboard",
    "metrics.json",
)  # fmt: skip
LOCK_NAME = ".lock"
REPLACED_PREFIX = "replaced-"
CONFIG_IGNORED_ON_RESUME = ("n_epochs", "device")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunFolderError(ValueError):
    """A run folder cannot be used as asked; the message names the folder or file and what was expected."""


# ----------------------------------------------------------------------------------------------- links
def _link_error(path) -> RunFolderError:
    return RunFolderError(
        f"{path}: is a symbolic link; the kit never writes a run's files through a link (it could overwrite the "
        "file it points to): remove the link or use another folder"
    )


def refuse_link(path) -> None:
    """:class:`RunFolderError` naming ``path`` when it is a symbolic link (a dangling one included)."""
    if os.path.islink(path):
        raise _link_error(path)


def _check_own_file(fd: int, path) -> None:
    """A file of the run opened for writing must be a regular file with one name (not a FIFO, device or hard link
    to a file elsewhere)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise RunFolderError(f"{path}: is not a regular file; remove it or use another folder")
    if info.st_nlink > 1:
        raise RunFolderError(
            f"{path}: has {info.st_nlink} names (a hard link); the kit never writes a run's files shared with "
            "another path: remove it or use another folder"
        )


def no_follow_opener(path, flags: int) -> int:
    """An ``opener`` for :func:`open` that refuses symbolic links (``O_NOFOLLOW``), FIFOs, devices and hard-linked
    files with a :class:`RunFolderError` naming the file; ``O_TRUNC`` applies only after those checks."""
    truncate = bool(flags & os.O_TRUNC)
    flags = (flags & ~os.O_TRUNC) | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _link_error(path) from None
        if error.errno == errno.ENXIO:  # a FIFO or socket (O_NONBLOCK keeps the open from waiting on it)
            raise RunFolderError(f"{path}: is not a regular file; remove it or use another folder") from None
        raise
    try:
        _check_own_file(fd, path)
        os.set_blocking(fd, True)
        if truncate:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_run_log(path, append: bool):
    """A log file of the run (``train.jsonl``), line-buffered text, opened never through a link."""
    return open(path, "a" if append else "w", encoding="utf-8", buffering=1, opener=no_follow_opener)


OWN_ENTRIES = (*RUN_FILES, LOCK_NAME)


def refuse_run_output(path, option: str) -> None:
    """:class:`RunFolderError` when an output path (``--json FILE``, an export's ``--out DIR``) resolves to a run
    folder itself, to one of a run's own entries (``config.json``, ``items.tsv``, ``checkpoints/``, ``.lock``, a
    ``replaced-*`` folder, ...) or into one of them. A run folder is any folder holding a ``config.json`` file;
    symbolic links are resolved first, so a link cannot smuggle the path in."""
    resolved = Path(os.path.realpath(os.fspath(path)))
    for folder in (resolved, *resolved.parents):
        if not (folder / "config.json").is_file():
            continue
        parts = resolved.relative_to(folder).parts
        if not parts:
            raise RunFolderError(
                f"{option} {path}: is the run folder {folder} itself; write the output to a new path, e.g. "
                f"{folder / 'export'}"
            )
        if parts[0] in OWN_ENTRIES or parts[0].startswith(REPLACED_PREFIX):
            where = "is" if len(parts) == 1 else "lies in"
            raise RunFolderError(
                f"{option} {path}: {where} the run {folder}'s own {parts[0]}; the run's files are never "
                f"overwritten by an output: write it elsewhere, e.g. {folder / 'evaluation.json'}"
            )


# ----------------------------------------------------------------------------------------------- fingerprint
def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def data_fingerprint(data) -> dict:
    """What identifies a ``SessionData`` used for training: sizes and hashes of its item map (index -> ItemId), its
    item counts and its events (item indices in training order and session offsets)."""
    return {
        "n_items": int(data.n_items),
        "n_events": int(data.n_events),
        "n_sessions": int(data.n_sessions),
        "item_ids_sha256": _sha256(np.asarray(data.item_map.ids, np.int64)),
        "item_counts_sha256": _sha256(np.asarray(data.item_counts, np.int64)),
        "events_sha256": _sha256(np.concatenate([np.asarray(data.items, np.int64), np.asarray(data.offsets)])),
    }


_FINGERPRINT_WORDS = {
    "n_items": "number of items", "n_events": "number of events", "n_sessions": "number of sessions",
    "item_ids_sha256": "item ids (items.tsv)", "item_counts_sha256": "item counts (item_support.npy)",
    "events_sha256": "events",
}  # fmt: skip


def fingerprint_differences(saved: dict, now: dict) -> list:
    """Human-readable differences between two :func:`data_fingerprint` dicts (empty when they match)."""
    out = []
    for key, words in _FINGERPRINT_WORDS.items():
        if key in saved and saved.get(key) != now.get(key):
            if key.endswith("sha256"):
                out.append(f"{words} differ")
            else:
                out.append(f"{words}: {saved[key]} (run) != {now.get(key)} (now)")
    return out


# ----------------------------------------------------------------------------------------------- lock
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(text: str) -> tuple[Optional[int], str]:
    parts = text.split()
    try:
        return int(parts[0]), (parts[1] if len(parts) > 1 else "")
    except (IndexError, ValueError):
        return None, ""


class RunLock:
    """An exclusive lock on a run folder (``.lock``); use as a context manager. Raises :class:`RunFolderError` when
    another live process holds it. The lock file records ``PID HOST``; a stale one (its process gone) is taken over."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = None
        self.stale_holder: Optional[int] = None  # pid of a dead process whose lock was taken over

    def _busy(self, text: str) -> RunFolderError:
        pid, host = _read_holder(text)
        who = f"process {pid}" + (f" on {host}" if host else "") if pid is not None else "another process"
        return RunFolderError(
            f"{self.folder}: the run folder is in use by {who} (lock file {self.path}); wait for it to finish "
            "or use another folder"
        )

    def acquire(self) -> RunLock:
        import fcntl

        for _ in range(10):
            try:  # never through a link: the lock file records pid and host, which would overwrite its target
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise _link_error(self.path) from None
                raise
            try:
                _check_own_file(fd, self.path)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise self._busy(os.pread(fd, 200, 0).decode("ascii", "replace")) from None
                except OSError:  # no flock on this file system: trust the recorded pid
                    pid, host = _read_holder(os.pread(fd, 200, 0).decode("ascii", "replace"))
                    if pid is not None and pid != os.getpid() and host == socket.gethostname() and _pid_alive(pid):
                        raise self._busy(f"{pid} {host}") from None
                try:  # the previous holder may have removed the file between our open and our lock
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                pid, _ = _read_holder(os.pread(fd, 200, 0).decode("ascii", "replace"))
                if pid is not None and pid != os.getpid():
                    self.stale_holder = pid
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode("ascii"), 0)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            self._fd = fd
            return self
        raise RunFolderError(f"{self.path}: could not take the lock (it keeps being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ----------------------------------------------------------------------------------------------- the folder
@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resume starts from."""

    epoch: int  # epochs done (checkpoint number)
    prefix: str  # the checkpoint's path prefix (``.../checkpoints/epoch-N``)


class RunFolder:
    """Paths and operations of one run folder (see the module docstring for what it guarantees)."""

    def __init__(self, path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    items_path = property(lambda self: self.path / "items.tsv")
    support_path = property(lambda self: self.path / "item_support.npy")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    log_path = property(lambda self: self.path / "train.log")
    jsonl_path = property(lambda self: self.path / "train.jsonl")
    tensorboard_dir = property(lambda self: self.path / "tensorboard")
    metrics_path = property(lambda self: self.path / "metrics.json")

    def holds_run(self) -> bool:
        return self.config_path.exists()

    # ------------------------------------------------------------------ create, lock, replace
    def create(self) -> None:
        """Make the folder (and its parents); a clear error when the path is a file or cannot be made."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path}: is a file, expected a run folder (a directory)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunFolderError(f"{self.path}: a parent of the run folder is a file") from None
        except PermissionError:
            raise RunFolderError(f"{self.path}: permission denied creating the run folder") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunLock]:
        """Create the folder and hold its lock for the ``with`` block. A folder made here that is still empty at the
        end (the command failed before writing anything) is removed again."""
        created = not self.path.exists()
        self.create()
        try:
            lock = RunLock(self.path).acquire()
        except PermissionError:
            raise RunFolderError(f"{self.path}: permission denied writing the lock file {LOCK_NAME}") from None
        try:
            yield lock
        finally:
            lock.release()
            if created:
                with contextlib.suppress(OSError):
                    self.path.rmdir()  # only succeeds when empty

    def set_aside(self) -> Optional[Path]:
        """Move the kit's files of the run in this folder into ``replaced-<UTC time>/`` (call under the lock);
        returns that folder, or None when there was nothing to move. Nothing else in the folder is touched."""
        present = self.run_files_present()
        if not present:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path / f"{REPLACED_PREFIX}{stamp}"
        n = 1
        while target.exists():
            n += 1
            target = self.path / f"{REPLACED_PREFIX}{stamp}-{n}"
        target.mkdir()
        # config.json first: from then on the folder no longer counts as holding a run
        for name in sorted(present, key=lambda name: name != "config.json"):
            os.replace(self.path / name, target / name)
        return target

    # ------------------------------------------------------------------ config.json
    def read_meta(self) -> dict:
        """``config.json`` as a dict; :class:`RunFolderError` naming the file when it is not a JSON object with a
        ``config`` object and ``n_items``."""
        path = self.config_path
        if not path.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder: config.json is missing")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RunFolderError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(meta, dict):
            raise RunFolderError(f"{path}: expected a JSON object, found {type(meta).__name__}")
        if not isinstance(meta.get("config"), dict):
            raise RunFolderError(f"{path}: expected a 'config' object (the hyperparameters)")
        n_items = meta.get("n_items")
        if not isinstance(n_items, int) or isinstance(n_items, bool) or n_items < 1:
            raise RunFolderError(f"{path}: expected 'n_items' to be an integer >= 1, found {n_items!r}")
        return meta

    def read_config(self, meta: Optional[dict] = None):
        """The run's Config (``gru4rec.config.Config``); errors name ``config.json``."""
        from gru4rec.config import Config

        meta = self.read_meta() if meta is None else meta
        try:
            return Config.from_dict(meta["config"])
        except (TypeError, ValueError) as error:
            raise RunFolderError(f"{self.config_path}: {error}") from None

    def write_meta(self, meta: dict) -> None:
        refuse_link(self.config_path)
        with atomic_write(self.config_path) as handle:
            handle.write(json.dumps(meta, indent=2) + "\n")

    def check_resume(self, config, data) -> None:
        """Raise :class:`RunFolderError` when ``config`` or the training data differ from the run's."""
        meta = self.read_meta()
        saved = self.read_config(meta)
        da, db = saved.to_dict(), config.to_dict()
        diffs = [f"{k}: {da[k]!r} (run) != {db[k]!r} (now)" for k in da
                 if k not in CONFIG_IGNORED_ON_RESUME and da[k] != db.get(k)]  # fmt: skip
        if diffs:
            raise RunFolderError(f"{self.path}: --resume with a different configuration: " + "; ".join(diffs))
        if "data" in meta:
            diffs = fingerprint_differences(meta["data"], data_fingerprint(data))
            if diffs:
                raise RunFolderError(
                    f"{self.path}: --resume with other training data than the run's: " + "; ".join(diffs)
                    + "; resume with the same training file, or train into a new folder"
                )
        if os.path.lexists(self.items_path):  # the run's other files must still be the run's (a missing one is
            self.read_item_map(meta)  # written again from the training data, which matches the fingerprint)
        self.read_support(meta)

    def run_files_present(self) -> list:
        """The names of :data:`RUN_FILES` present in the folder (links included), in :data:`RUN_FILES` order."""
        return [name for name in RUN_FILES if os.path.lexists(self.path / name)]

    def check_links(self) -> None:
        """:class:`RunFolderError` when one of the run's own entries (:data:`RUN_FILES`, the entries of
        ``checkpoints/`` and ``tensorboard/``) is a symbolic link, or of the wrong kind (a FIFO where a file is
        expected, a file where a folder is): the kit reads and writes them (call under the lock)."""
        for name in RUN_FILES:
            path = self.path / name
            refuse_link(path)
            folder = name in ("checkpoints", "tensorboard")
            if path.exists() and not (path.is_dir() if folder else path.is_file()):
                raise RunFolderError(f"{path}: expected {'a folder' if folder else 'a regular file'}; remove it or "
                                     "use another folder")  # fmt: skip
        for folder in (self.checkpoints_dir, self.tensorboard_dir):
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    refuse_link(entry)

    def check_training(self, config, data, resume: bool, replace: bool = False) -> None:
        """Check the folder for a training call (under the lock) without changing anything: no link among the
        run's entries; a resume needs the same config and data; a new run needs a folder without a run's files,
        unless ``replace`` (then :meth:`set_aside` moves them; :func:`gru4rec.train.train` opens the device first).
        """
        self.check_links()
        if self.holds_run():
            if resume:
                self.check_resume(config, data)
            elif not replace:
                raise RunFolderError(
                    f"{self.path} already holds a run (config.json); resume it (command line: --resume; Python: "
                    "train(..., resume=True)) or use another folder"
                )
            return
        present = self.run_files_present()
        if present and not replace:
            raise RunFolderError(
                f"{self.path}: holds {', '.join(present)} but no config.json (files the kit did not write, or a "
                "run moved aside half-way); a run would overwrite or reuse them: move them away or use another "
                "folder"
            )

    # ------------------------------------------------------------------ files checked against config.json
    def read_item_map(self, meta: Optional[dict] = None):
        """``items.tsv`` as an ``ItemMap``, checked against ``config.json`` (``n_items`` and, when recorded, the
        item ids' hash ``data.item_ids_sha256``); :class:`RunFolderError` naming the file otherwise."""
        from gru4rec.session_data import ItemMap

        meta = self.read_meta() if meta is None else meta
        if not self.items_path.exists():
            raise FileNotFoundError(f"{self.items_path}: no such file (the run's item map)")
        item_map = ItemMap.load(self.items_path)
        n_items = int(meta["n_items"])
        if item_map.n_items != n_items:
            raise RunFolderError(
                f"{self.items_path}: holds {item_map.n_items} items, but {self.config_path} says n_items={n_items}"
            )
        expected = (meta.get("data") or {}).get("item_ids_sha256")
        if expected is not None and _sha256(np.asarray(item_map.ids, np.int64)) != expected:
            raise RunFolderError(
                f"{self.items_path}: its item ids (or their order) differ from the run's ({self.config_path}: "
                "data.item_ids_sha256); the file was changed or belongs to another run: the model's rows would "
                "map to the wrong items"
            )
        return item_map

    def read_support(self, meta: Optional[dict] = None) -> Optional[np.ndarray]:
        """``item_support.npy`` (training events per item index, ``(n_items,)``) checked against ``config.json``
        (its length and, when recorded, ``data.item_counts_sha256``); None when the file is missing."""
        meta = self.read_meta() if meta is None else meta
        path = self.support_path
        if not os.path.exists(path):
            return None
        try:
            support = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise RunFolderError(f"{path}: cannot be read ({error})") from None
        n_items = int(meta["n_items"])
        if support.shape != (n_items,) or not np.issubdtype(support.dtype, np.number):
            raise RunFolderError(
                f"{path}: expected {n_items} numbers (one per item, {self.config_path} n_items), found an array "
                f"of shape {support.shape} and type {support.dtype}"
            )
        expected = (meta.get("data") or {}).get("item_counts_sha256")
        if expected is not None and _sha256(np.asarray(support, np.int64)) != expected:
            raise RunFolderError(
                f"{path}: the item counts differ from the run's ({self.config_path}: data.item_counts_sha256); the "
                "file was changed or belongs to another run"
            )
        return support

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_epochs(self) -> list:
        """The epochs with a complete checkpoint (``epoch-N.index`` and its data file), ascending."""
        epochs = set()
        for path in self.checkpoints_dir.glob("epoch-*.index"):
            match = re.fullmatch(r"epoch-(\d+)\.index", path.name)
            if match and any(self.checkpoints_dir.glob(f"epoch-{match.group(1)}.data-*")):
                epochs.add(int(match.group(1)))
        return sorted(epochs)

    def checkpoint_prefix(self, epoch: int) -> str:
        return str(self.checkpoints_dir / f"epoch-{int(epoch)}")

    def latest_checkpoint(self) -> Optional[ResumePoint]:
        """The newest checkpoint found from the files (not from ``checkpoints/checkpoint``), or None."""
        epochs = self.checkpoint_epochs()
        return ResumePoint(epochs[-1], self.checkpoint_prefix(epochs[-1])) if epochs else None

    def restore(self, checkpoint, prefix: str, partial: bool = False) -> None:
        """Restore a ``tf.train.Checkpoint`` from ``prefix``; an unreadable checkpoint or one whose variables do not
        fit (e.g. shapes of another configuration) raises :class:`RunFolderError` naming it."""
        import tensorflow as tf

        try:
            status = checkpoint.restore(prefix)
            if partial:
                status = status.expect_partial()
            status.assert_existing_objects_matched()
        except (tf.errors.OpError, IndexError, ValueError, AssertionError, KeyError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunFolderError(
                f"{prefix}: the checkpoint cannot be restored ({first[:300]}); it is corrupt or does not fit "
                f"{self.config_path}"
            ) from None

    # ------------------------------------------------------------------ logs
    def cut_logs(self, step: int, epochs_done: int) -> dict:
        """Cut ``train.log``, ``train.jsonl`` and the TensorBoard events back to what the checkpoint at ``step``
        (after ``epochs_done`` epochs) had logged; returns how many records each lost."""
        return {
            "train.log": _cut_seed_log(self.log_path, step),
            "train.jsonl": _cut_jsonl(self.jsonl_path, step, epochs_done),
            "tensorboard": _cut_tensorboard(self.tensorboard_dir, step, epochs_done),
        }


# ----------------------------------------------------------------------------------------------- log cutting
def _cut_seed_log(path: Path, step: int) -> int:
    from gru4rec.logs import record_step

    if not path.exists():
        return 0
    kept, dropped, cutting = [], 0, False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        if not line.endswith("\n"):  # a line cut off by the kill
            break
        record = record_step(line)
        if record is not None:
            cutting = record > step
            dropped += cutting
        if not cutting:
            kept.append(line)
    with atomic_write(path) as handle:
        handle.write("".join(kept))
    return dropped


def _cut_jsonl(path: Path, step: int, epochs_done: int) -> int:
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        late = (record.get("kind") == "log" and record.get("step", 0) > step) or (
            record.get("kind") == "epoch" and record.get("epochs_done", 0) > epochs_done
        )
        if late or not line.endswith("\n"):
            dropped += 1
        else:
            kept.append(line)
    with atomic_write(path) as handle:
        handle.write("".join(kept))
    return dropped


def _cut_tensorboard(folder: Path, step: int, epochs_done: int) -> int:
    """Rewrite each event file without the summaries logged after the checkpoint (``epoch/*`` tags count in
    epochs, the others in mini-batch steps)."""
    if not folder.is_dir():
        return 0
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    dropped = 0
    for path in sorted(folder.glob("events.out.tfevents.*")):
        kept, late = [], 0
        try:
            for raw in tf.data.TFRecordDataset(str(path)):
                event = event_pb2.Event.FromString(raw.numpy())
                tags = [value.tag for value in event.summary.value]
                limit = epochs_done if tags and all(tag.startswith("epoch/") for tag in tags) else step
                if tags and event.step > limit:
                    late += 1
                else:
                    kept.append(raw.numpy())
        except tf.errors.DataLossError:  # a record cut off by the kill: keep what came before it
            late += 1
        if late:
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for raw in kept:
                    writer.write(raw)
            os.replace(tmp, path)
        dropped += late
    return dropped


def jsonl_line(record: dict) -> str:
    """One strict-JSON line of ``train.jsonl``: non-finite numbers become ``null`` (with a warning naming them)."""
    bad = [key for key, value in record.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        warnings.warn(f"train.jsonl: non-finite {', '.join(bad)} at step {record.get('step', '?')} written as null",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
        record = {key: (None if key in bad else value) for key, value in record.items()}
    return json.dumps(record, allow_nan=False) + "\n"


def lock_if_run(target) -> Any:
    """For a writer of ``target`` (e.g. an export's output folder): the lock of the run folder that ``target`` is or
    lies directly in, when there is one; a null context otherwise."""
    target = Path(target).absolute()
    for folder in (target, target.parent):
        if (folder / "config.json").is_file():
            return RunFolder(folder).locked()
    return contextlib.nullcontext()


def drop_checkpoints(run_dir) -> int:
    """Delete the ``checkpoints/`` of the run folder ``run_dir`` (config, item map and logs stay) and return the bytes
    freed. For runs that were measured in memory and are never resumed or reloaded (notebooks 06 and 07); refuses a
    folder without ``config.json`` (RunFolderError), so it never deletes from something else than a run folder."""
    folder = RunFolder(Path(run_dir))
    if not folder.config_path.is_file():
        raise RunFolderError(f"{folder.path}: not a run folder (no config.json); nothing deleted")
    target = folder.checkpoints_dir
    if target.is_symlink() or not target.is_dir():
        return 0
    freed = sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink())
    shutil.rmtree(target)
    return freed
