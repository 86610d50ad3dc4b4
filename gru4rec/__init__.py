"""GRU4Rec teaching kit: session-based recommendation with recurrent networks in TensorFlow 2.

The package is the tested core behind the notebooks in ``notebooks/``. Modules, one concern each:

- ``io``, ``rsc15``, ``synthetic``: click files, the RSC15 preprocessing rules, the synthetic generator and its ceiling
- ``session_data``, ``batching``: sessions as arrays and session-parallel mini-batches
- ``model``, ``losses``, ``sampling``, ``optim``, ``train``, ``config``, ``logs``: the GRU4Rec model and its training
- ``evaluate``, ``baselines``, ``recommend``: next-item evaluation, the paper's baselines, inference and export
- ``devices``, ``distribute``: CPU/GPU/NPU and data-parallel training
- ``notebook``, ``widgets``, ``lab``: helpers for the notebooks (plots, recorded results, the playground, the
  JupyterLab working copy)
- ``divergence``, ``quiet``: the divergence warning; TensorFlow's start-up INFO lines kept off the console
"""

__version__ = "0.1.0"

from gru4rec import quiet as _quiet  # noqa: E402 - before any module of the package imports TensorFlow

_quiet.install()
