"""The course in JupyterLab without dirtying the checkout: a working copy of the notebooks (``gru4rec lab``).

JupyterLab autosaves what it runs into the notebook it opened, outputs included. Opened on ``notebooks/`` that is the
tracked course (committed without outputs), and a notebook run there writes its results into the main job's
``build/``. So ``gru4rec lab`` opens a working copy instead, by default ``lab/`` in the checkout (git-ignored)::

    lab/notebooks/*.ipynb   copies of the course notebooks: created once, never overwritten (your edits survive);
                            a notebook added to the course later is copied in at the next start
    lab/data -> ../data     a link to the checkout's data folder (the embedded tiny set, generated presets)
    lab/build/              what the notebooks write (their OUTPUT_DIR "../build"): runs, results
    lab/replaced/           a notebook's previous copy, moved here by ``gru4rec lab --reset NAME``

The notebooks find ``../data`` and ``../build`` from ``lab/notebooks`` exactly as they do from ``notebooks/``, so
they run unchanged. JupyterLab listens on 127.0.0.1 with a token; ``--allow-root`` is added only when running as
root (containers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["LabCopy", "default_lab_dir", "course_notebooks", "prepare_lab", "reset_notebook", "jupyter_command"]


def _root() -> Path:
    from gru4rec.course import repository_root

    return repository_root()


def default_lab_dir() -> Path:
    """``lab/`` in the checkout (git-ignored)."""
    return _root() / "lab"


def course_notebooks(source: Optional[PathLike] = None) -> list:
    """The course's notebooks (``notebooks/*.ipynb`` of the checkout, or of ``source``), sorted by name."""
    folder = Path(source) if source is not None else _root() / "notebooks"
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file())


@dataclass
class LabCopy:
    """A working copy: its folder and what :func:`prepare_lab` did (names of notebooks copied / kept)."""

    root: Path
    copied: list = field(default_factory=list)
    kept: list = field(default_factory=list)

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"


def _copy_atomically(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def prepare_lab(lab_dir: Optional[PathLike] = None, source: Optional[PathLike] = None) -> LabCopy:
    """Create or complete the working copy in ``lab_dir`` (default :func:`default_lab_dir`): copy every course
    notebook that is not there yet (an existing copy is never overwritten) and link ``data`` to the checkout's
    data folder. Raises FileExistsError when ``lab_dir/data`` is something else than that link."""
    root = Path(lab_dir) if lab_dir is not None else default_lab_dir()
    copy = LabCopy(root.resolve())
    copy.notebooks.mkdir(parents=True, exist_ok=True)
    for notebook in course_notebooks(source):
        target = copy.notebooks / notebook.name
        if target.exists():
            copy.kept.append(notebook.name)
        else:
            _copy_atomically(notebook, target)
            copy.copied.append(notebook.name)
    data = copy.root / "data"
    checkout_data = _root() / "data"
    if data.is_symlink() or data.exists():
        if data.resolve() != checkout_data.resolve():
            raise FileExistsError(f"{data}: expected a link to {checkout_data}; move it away or use another --dir")
    else:
        data.symlink_to(os.path.relpath(checkout_data, copy.root), target_is_directory=True)
    (copy.root / "build").mkdir(exist_ok=True)
    return copy


def reset_notebook(name: str, lab_dir: Optional[PathLike] = None, source: Optional[PathLike] = None) -> Path:
    """Put the course's original ``name`` (e.g. ``04_evaluation.ipynb``; the suffix may be left out) back into the
    working copy; the learner's version is moved to ``replaced/`` with a time stamp, never deleted. Returns the
    path the old copy was moved to (or the new copy's, when there was none)."""
    originals = {p.name: p for p in course_notebooks(source)}
    key = name if name.endswith(".ipynb") else f"{name}.ipynb"
    if key not in originals:
        raise ValueError(f"--reset {name!r}: no such course notebook; known: {', '.join(originals)}")
    copy = prepare_lab(lab_dir, source)
    target = copy.notebooks / key
    moved = target
    if target.exists() and key not in copy.copied:
        replaced = copy.root / "replaced"
        replaced.mkdir(exist_ok=True)
        moved = replaced / f"{target.stem}-{time.strftime('%Y%m%d-%H%M%S')}{target.suffix}"
        os.replace(target, moved)
    _copy_atomically(originals[key], target)
    return moved


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def jupyter_command(
    lab_dir: PathLike,
    port: Optional[int] = None,
    token: Optional[str] = None,
    open_browser: bool = True,
    extra: Sequence[str] = (),
) -> tuple:
    """``(argv, env)`` of the JupyterLab server over ``lab_dir``: this environment's ``jupyter lab`` on
    127.0.0.1 (``port``: that port and no other; None: Jupyter's 8888 or the next free one), ``--allow-root`` only
    as root, then ``extra`` (more ``jupyter lab`` options). ``env`` holds what to add to the environment: the
    access token (``JUPYTER_TOKEN``: ``token``, a random one by default; not in ``argv``, which other users of the
    machine can read) and ``TF_CPP_MIN_LOG_LEVEL`` for the kernels unless already set."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        raise FileNotFoundError(f"{jupyter}: JupyterLab is not installed in this environment (bash ci/setup_env.sh)")
    env = {"JUPYTER_TOKEN": token or secrets.token_hex(24),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1")}  # fmt: skip
    argv = [str(jupyter), "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={Path(lab_dir).resolve()}"]
    if port is not None:
        argv += [f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0"]
    if not open_browser:
        argv.append("--no-browser")
    if running_as_root():
        argv.append("--allow-root")  # jupyter refuses to start as root otherwise (containers)
    from gru4rec.course import kernels_can_encrypt

    if kernels_can_encrypt():  # CurveZMQ keys for the kernels: no "running over TCP without encryption" warning
        argv.append("--KernelManager.transport_encryption=auto")
    return [*argv, *extra], env
