"""Quiet start-up: TensorFlow's import-time INFO lines kept off the console, its warnings and errors kept.

Importing TensorFlow 2.16+ prints, from C++ and whatever ``TF_CPP_MIN_LOG_LEVEL`` says, lines such as::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796159438.526334    5196 port.cc:153] oneDNN custom operations are on. ...

on every command and in a red stderr box in the first cell of every notebook. They are INFO messages (the leading
``I``), written straight to file descriptor 2 before Python can filter them. :func:`install` (called when the
``gru4rec`` package is imported, before anything imports TensorFlow) wraps the first ``import tensorflow``: during
that import, file descriptor 2 goes to a temporary file; afterwards every line of it that is not an INFO line or the
absl banner is written back to stderr, so warnings (``W…``), errors (``E…``) and Python warnings still show.
Set ``GRU4REC_TF_STARTUP_LOG=1`` to see the start-up lines unfiltered.

One TensorFlow warning is also filtered, narrowly: "N out of the last N calls to F triggered tf.function retracing"
when ``F`` is one of the kit's own functions (a function or class of a ``gru4rec`` module, e.g. ``Trainer._run_chunk``,
``NegativeSampler._take``, ``where_ops_ran.<locals>.probe``). Every new model traces its functions anew, by design,
so notebooks that train several models (06, 07) showed it in red stderr boxes although there was nothing to change;
the same warning about any other function is kept (:class:`KitRetracingFilter` on the ``tensorflow`` logger).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
from typing import Optional, Sequence

__all__ = ["NOISE_PATTERNS", "is_noise", "filter_startup_log", "is_kit_retracing", "KitRetracingFilter", "install"]

NOISE_PATTERNS: tuple = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$"),
    re.compile(r"^I\d{4} \S+\s+\d+ \S+:\d+\] "),  # an absl/glog INFO line: I<mmdd> <time> <thread> <file>:<line>]
)


def is_noise(line: str) -> bool:
    """True for TensorFlow's start-up INFO lines and the absl banner that precedes them."""
    return any(pattern.match(line) for pattern in NOISE_PATTERNS)


def filter_startup_log(text: str) -> str:
    """``text`` without its noise lines (:func:`is_noise`); everything else unchanged, in order."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))


RETRACING = re.compile(
    r"calls to <(?:function (?P<function>[\w.<>]+) at 0x[0-9a-fA-F]+"
    r"|bound method (?P<method>[\w.<>]+) of <(?P<module>[\w.]+)\.\w+ object at 0x[0-9a-fA-F]+>)> "
    r"triggered tf\.function retracing"
)


def _kit_defines(qualname: str) -> bool:
    """True when a loaded ``gru4rec`` module defines ``qualname``, a method (``Trainer._run_chunk``) or a function
    local to one (``where_ops_ran.<locals>.probe``): the path before ``<locals>`` resolves, from a function or class
    whose ``__module__`` is the kit's. A plain top-level name (``train``) is never taken for the kit's: it could be
    anyone's."""
    parts = qualname.split(".")
    if len(parts) < 2:
        return False
    path = parts[: parts.index("<locals>")] if "<locals>" in parts else parts
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "gru4rec" or module_name.startswith("gru4rec.")):
            continue
        defined = getattr(module, path[0], None)
        if str(getattr(defined, "__module__", "") or "").split(".")[0] != "gru4rec":
            continue
        for attribute in path[1:]:
            defined = getattr(defined, attribute, None)
        if defined is not None:
            return True
    return False


def is_kit_retracing(message: str) -> bool:
    """True for TensorFlow's retracing warning about one of the kit's own functions (see the module docstring)."""
    match = RETRACING.search(message)
    if match is None:
        return False
    if match["method"] is not None:
        return match["module"].split(".")[0] == "gru4rec"
    return _kit_defines(match["function"])


class KitRetracingFilter(logging.Filter):
    """Drops the ``tensorflow`` logger's retracing warnings about the kit's functions (:func:`is_kit_retracing`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not is_kit_retracing(record.getMessage())
        except Exception:  # noqa: BLE001 - a filter must never lose a record because it could not read it
            return True


_RETRACING_FILTER = KitRetracingFilter()


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's ``exec_module`` with file descriptor 2 captured, then writes back what is not
    noise."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no usable file descriptor 2 (some embedded interpreters): import as usual
            self.loader.exec_module(module)
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = filter_startup_log(capture.read().decode("utf-8", errors="replace"))
                if kept:
                    sys.stderr.write(kept)
                    sys.stderr.flush()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once (with the other finders) and wraps its loader in :class:`_QuietLoader`."""

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target=None):
        if name != "tensorflow":
            return None
        _uninstall()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_FINDER = _QuietTensorFlowFinder()


def _uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def install() -> bool:
    """Filter the start-up lines of the first ``import tensorflow`` of this process and the retracing warnings
    about the kit's functions (see the module docstring). Does nothing when ``GRU4REC_TF_STARTUP_LOG=1``; only the
    retracing filter when TensorFlow is already imported; True when the start-up filter was installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's own INFO filter; warnings still show
    if os.environ.get("GRU4REC_TF_STARTUP_LOG", "") == "1":
        return False
    tf_logger = logging.getLogger("tensorflow")  # the logger TensorFlow's Python warnings go to
    if _RETRACING_FILTER not in tf_logger.filters:
        tf_logger.addFilter(_RETRACING_FILTER)
    if "tensorflow" in sys.modules:
        return False
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return True
