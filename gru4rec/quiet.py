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
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from typing import Optional, Sequence

__all__ = ["NOISE_PATTERNS", "is_noise", "filter_startup_log", "install"]

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
    """Filter the start-up lines of the first ``import tensorflow`` of this process (see the module docstring).
    Does nothing when TensorFlow is already imported or ``GRU4REC_TF_STARTUP_LOG=1``; True when installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's own INFO filter; warnings still show
    if "tensorflow" in sys.modules or os.environ.get("GRU4REC_TF_STARTUP_LOG", "") == "1":
        return False
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return True
