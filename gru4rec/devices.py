"""Where training runs: ``--device auto|cpu|gpu|npu``, and a record of where the ops really ran.

Detection (``auto``), in this order:

1. **NPU** when Huawei's TF2 adapter ``npu_device`` (TF Adapter 2.x) imports *and* ``npu.open()`` succeeds. The kit
   never detects the NPU with ``import npu``: that PyPI name is an unrelated package. ``npu_device`` ships as a wheel
   on the TF Adapter release pages (not on PyPI), supports only TensorFlow 2.6.5 with Python 3.7–3.9, and fails to
   import without the CANN toolkit and driver.
2. **GPU** when ``tf.config.list_physical_devices("GPU")`` lists one.
3. **CPU** otherwise.

Asking for a device that is not there (``--device gpu`` on a machine without one, ``--device npu`` without a working
adapter) raises :class:`DeviceUnavailableError` and nothing runs: there is never a silent fallback. Under ``auto`` an
adapter that imports but fails to open is skipped with a warning, and the reason is kept in ``DeviceChoice.notes``
(and so in the run's ``config.json``).

The NPU path follows the TF Adapter 2.x documentation (hiascend.com, "TF Adapter 2.x接口参考": ``npu.open``,
``npu.global_options``, ``npu.set_npu_loop_size``) and the adapter's source (github.com/Ascend/tensorflow,
``tf_adapter_2.x/python/npu_device/npu_device.py``). **It has not been run on an NPU by this project**; the tests
drive it with a fake adapter kept under ``tests/fake_npu`` only.

Typical use (the trainer does this; a notebook shows :func:`device_banner`)::

    choice = resolve_device(args.device, precision_mode="must_keep_origin_dtype", loop_size=chunk_steps)
    with device_scope(choice):
        ...build the model, train...
    config["environment"] = environment_report(choice)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import platform
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

DEVICE_KINDS: Tuple[str, ...] = ("auto", "cpu", "gpu", "npu")

#: Precision modes of the adapter this kit uses: ``must_keep_origin_dtype`` keeps float32 (the adapter's own default
#: lets the graph engine lower some float32 operators to float16), ``allow_mix_precision`` is the Ascend 910's
#: automatic float16 mixed precision (with loss scaling, see ``gru4rec.precision``), ``allow_mix_precision_bf16``
#: the bfloat16 variant newer adapters list for newer chips.
NPU_PRECISION_MODES: Tuple[str, ...] = ("allow_mix_precision", "must_keep_origin_dtype", "allow_mix_precision_bf16")

NPU_ADAPTER_MODULE = "npu_device"  # never "npu": an unrelated PyPI package
NPU_REQUIREMENTS = "it needs TensorFlow 2.6.5, Python 3.7–3.9, the CANN toolkit and driver, and the npu_device wheel"
NPU_NOT_RUN_LINE = "NPU: not present on this machine — the NPU path was not run here"


class DeviceUnavailableError(ValueError):
    """The asked-for device is not there (or cannot be opened). Nothing was run; no fallback was taken."""


class NpuAdapterNotImportableError(DeviceUnavailableError):
    """``import npu_device`` failed (no adapter wheel, wrong TensorFlow/Python, or no CANN libraries)."""


@dataclass(frozen=True)
class NpuActivation:
    """What :func:`activate_npu` did, in the order it did it (recorded in ``config.json``)."""

    device_id: int
    device: str  # TF device string of the opened NPU
    precision_mode: str
    loop_size: Optional[int]
    loop_size_set_by: Optional[str]  # "npu.set_npu_loop_size", "NPU_LOOP_SIZE", or None
    options: Dict[str, Any]
    handle: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "device_id": self.device_id,
            "device": self.device,
            "precision_mode": self.precision_mode,
            "loop_size": self.loop_size,
            "loop_size_set_by": self.loop_size_set_by,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class DeviceChoice:
    """The device a run uses.

    ``kind`` is ``cpu``, ``gpu`` or ``npu``; ``device`` the TF device string to place ops with (``/device:CPU:0``,
    ``/device:GPU:0``, ``/job:localhost/replica:0/task:0/device:NPU:<id>``); ``name`` a human name (CPU model, GPU
    name, ``Ascend NPU <id>``); ``requested`` what the user asked for; ``notes`` why other devices were skipped.
    """

    kind: str
    device: str
    name: str
    requested: str = "auto"
    notes: Tuple[str, ...] = ()
    npu: Optional[NpuActivation] = None

    def as_dict(self) -> Dict[str, Any]:
        return {
            "kind": self.kind,
            "device": self.device,
            "name": self.name,
            "requested": self.requested,
            "notes": list(self.notes),
            "npu": self.npu.as_dict() if self.npu is not None else None,
        }


# --------------------------------------------------------------------------------------------------------------- CPU


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# --------------------------------------------------------------------------------------------------------------- GPU


def gpu_names() -> List[str]:
    """Names of the GPUs TensorFlow lists (``get_device_details``'s ``device_name``; the TF name if absent)."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details: Dict[str, Any] = {}
        try:
            details = tf.config.experimental.get_device_details(gpu) or {}
        except Exception:  # noqa: BLE001 - older TF or a driver that does not answer: keep the TF name
            details = {}
        names.append(str(details.get("device_name") or gpu.name))
    return names


# --------------------------------------------------------------------------------------------------------------- NPU

_npu_activation: Optional[NpuActivation] = None


def _import_npu_adapter() -> Any:
    """``import npu_device`` or raise :class:`DeviceUnavailableError` saying why."""
    try:
        return importlib.import_module(NPU_ADAPTER_MODULE)
    except Exception as error:  # ImportError, or tf.errors.NotFoundError from the adapter's op library
        raise NpuAdapterNotImportableError(
            f"--device npu was asked for, but the Ascend adapter {NPU_ADAPTER_MODULE} is not importable "
            f"({NPU_REQUIREMENTS}; import said: {type(error).__name__}: {error}) — nothing was run"
        ) from error


def npu_adapter_importable() -> Tuple[bool, str]:
    """Whether ``npu_device`` imports here, and the reason when it does not. Opens nothing."""
    if NPU_ADAPTER_MODULE in sys.modules and sys.modules[NPU_ADAPTER_MODULE] is not None:
        return True, "already imported"
    try:
        _import_npu_adapter()
    except NpuAdapterNotImportableError as error:
        cause = error.__cause__
        return False, f"{type(cause).__name__}: {cause}"
    return True, "imported"


def _ascend_device_id(device_id: Optional[int]) -> int:
    if device_id is not None:
        return int(device_id)
    raw = os.environ.get("ASCEND_DEVICE_ID", "0").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"ASCEND_DEVICE_ID={raw!r} is not a device number (0, 1, …)") from None
    if value < 0:
        raise ValueError(f"ASCEND_DEVICE_ID={raw!r} is negative")
    return value


def activate_npu(
    precision_mode: str = "allow_mix_precision",
    *,
    loop_size: Optional[int] = None,
    device_id: Optional[int] = None,
    options: Optional[Dict[str, Any]] = None,
) -> NpuActivation:
    """Open the Ascend NPU through TF Adapter 2.x, with every option set *before* ``npu.open().as_default()``.

    Order (the adapter reads its options when the device opens, and must be opened before any model is built):

    1. ``NPU_LOOP_SIZE`` is put in the environment when ``loop_size`` is given and ``npu_device`` is not imported
       yet (the CANN environment-variable reference: "set before import npu_device");
    2. ``import npu_device as npu``;
    3. ``npu.global_options().precision_mode = precision_mode`` and any other ``options`` (attribute names of
       ``npu.global_options()``, e.g. ``{"op_compiler_cache_mode": "enable"}``);
    4. ``npu.set_npu_loop_size(loop_size)`` (TF Adapter 2.x API "npu.set_npu_loop_size": steps per loop sunk to the
       NPU; the kit matches it to its training chunk, the number of steps one ``tf.function`` call runs);
    5. ``npu.open(device_id).as_default()``: one device per process, ``device_id`` defaulting to
       ``ASCEND_DEVICE_ID`` (0 when unset).

    Raises :class:`DeviceUnavailableError` when the adapter does not import or the device does not open (nothing
    is run and nothing falls back), ``ValueError`` for an unknown precision mode or a second activation with
    different settings (the options only take effect before the first open: start a new process).
    """
    global _npu_activation
    if precision_mode not in NPU_PRECISION_MODES:
        raise ValueError(f"precision_mode must be one of {', '.join(NPU_PRECISION_MODES)}; got {precision_mode!r}")
    if loop_size is not None and (int(loop_size) != loop_size or int(loop_size) < 1):
        raise ValueError(f"loop_size must be a positive integer; got {loop_size!r}")
    loop_size = None if loop_size is None else int(loop_size)
    device_id = _ascend_device_id(device_id)
    options = dict(options or {})

    if _npu_activation is not None:
        same_device = (
            _npu_activation.device_id == device_id
            and _npu_activation.precision_mode == precision_mode
            and all(_npu_activation.options.get(k) == v for k, v in options.items())
        )
        if same_device and (loop_size is None or _npu_activation.loop_size == loop_size):
            return _npu_activation
        adapter = sys.modules.get(NPU_ADAPTER_MODULE)
        if same_device and hasattr(adapter, "set_npu_loop_size"):
            # The loop size is a runtime setting of the open device (e.g. BP then BPTT in one notebook).
            adapter.set_npu_loop_size(loop_size)
            _npu_activation = dataclasses.replace(
                _npu_activation, loop_size=loop_size, loop_size_set_by="npu.set_npu_loop_size"
            )
            return _npu_activation
        raise ValueError(
            f"the NPU is already open in this process ({_npu_activation.as_dict()}); its options only take effect "
            "before the first npu.open(), so start a new process to change them"
        )

    loop_size_set_by = None
    if loop_size is not None and NPU_ADAPTER_MODULE not in sys.modules:
        os.environ["NPU_LOOP_SIZE"] = str(loop_size)
        loop_size_set_by = "NPU_LOOP_SIZE"

    npu = _import_npu_adapter()

    global_options = npu.global_options()
    try:
        global_options.precision_mode = precision_mode
        for name, value in options.items():
            if not hasattr(global_options, name):
                raise ValueError(f"npu.global_options() has no option {name!r}")
            setattr(global_options, name, value)
    except ValueError:
        raise
    except Exception as error:  # the adapter validates values when they are assigned
        raise ValueError(f"the NPU adapter refused an option: {type(error).__name__}: {error}") from error

    if loop_size is not None and hasattr(npu, "set_npu_loop_size"):
        npu.set_npu_loop_size(loop_size)
        loop_size_set_by = "npu.set_npu_loop_size"

    try:
        handle = npu.open(device_id)
        handle = handle.as_default() or handle
    except Exception as error:
        raise DeviceUnavailableError(
            f"--device npu was asked for and {NPU_ADAPTER_MODULE} imported, but npu.open({device_id}) failed "
            f"(ASCEND_DEVICE_ID={device_id}; check the driver with npu-smi info and the CANN environment, "
            f"e.g. set_env.sh): {type(error).__name__}: {error} — nothing was run, no fallback"
        ) from error

    device = f"/job:localhost/replica:0/task:0/device:NPU:{device_id}"
    name_fn = getattr(handle, "name", None)
    if callable(name_fn):
        try:
            device = str(name_fn())
        except Exception:  # noqa: BLE001 - keep the documented name
            pass
    _npu_activation = NpuActivation(
        device_id=device_id,
        device=device,
        precision_mode=precision_mode,
        loop_size=loop_size,
        loop_size_set_by=loop_size_set_by,
        options={"precision_mode": precision_mode, **options},
        handle=handle,
    )
    return _npu_activation


def npu_activation() -> Optional[NpuActivation]:
    """The NPU opened in this process by :func:`activate_npu`, or None."""
    return _npu_activation


def _forget_npu_activation_for_tests() -> None:
    """Tests only: forget a (fake) activation so the next test starts clean. A real adapter cannot be re-opened."""
    global _npu_activation
    _npu_activation = None


# ------------------------------------------------------------------------------------------------------ resolution


def resolve_device(
    requested: str = "auto",
    *,
    precision_mode: str = "must_keep_origin_dtype",
    loop_size: Optional[int] = None,
    npu_options: Optional[Dict[str, Any]] = None,
) -> DeviceChoice:
    """Choose the device for ``--device requested`` (``auto``, ``cpu``, ``gpu`` or ``npu``).

    For the NPU this also opens it (:func:`activate_npu` with ``precision_mode``, ``loop_size`` and
    ``npu_options``): the adapter's options must be known before it opens, so pass them here; see
    ``gru4rec.precision.npu_precision_mode`` for the mode matching ``--precision``. Call it before building models.
    """
    requested = (requested or "auto").strip().lower()
    if requested not in DEVICE_KINDS:
        raise ValueError(f"--device must be one of {', '.join(DEVICE_KINDS)}; got {requested!r}")
    notes: List[str] = []

    if requested in ("auto", "npu"):
        if requested == "npu":
            activation = activate_npu(precision_mode, loop_size=loop_size, options=npu_options)
            return _npu_choice(activation, requested, notes)
        try:
            activation = activate_npu(precision_mode, loop_size=loop_size, options=npu_options)
        except NpuAdapterNotImportableError as error:
            cause = error.__cause__
            notes.append(f"npu: {NPU_ADAPTER_MODULE} not importable ({type(cause).__name__}: {cause})")
        except DeviceUnavailableError as error:
            cause = error.__cause__
            message = (
                f"npu: {NPU_ADAPTER_MODULE} imported but the device did not open "
                f"({type(cause).__name__}: {cause})"
            )
            warnings.warn(f"--device auto skipped the NPU: {message}", RuntimeWarning, stacklevel=2)
            notes.append(message)
        else:
            return _npu_choice(activation, requested, notes)

    if requested in ("auto", "gpu"):
        names = gpu_names()
        if names:
            return DeviceChoice("gpu", "/device:GPU:0", names[0], requested, tuple(notes))
        if requested == "gpu":
            raise DeviceUnavailableError(
                "--device gpu was asked for, but TensorFlow lists no GPU on this machine "
                "(tf.config.list_physical_devices('GPU') is empty; the tensorflow-cpu wheel never sees one) "
                "— nothing was run"
            )
        notes.append("gpu: TensorFlow lists no GPU")

    return DeviceChoice("cpu", "/device:CPU:0", cpu_name(), requested, tuple(notes))


def _npu_choice(activation: NpuActivation, requested: str, notes: List[str]) -> DeviceChoice:
    return DeviceChoice(
        "npu", activation.device, f"Ascend NPU {activation.device_id}", requested, tuple(notes), activation
    )


@contextlib.contextmanager
def device_scope(choice: DeviceChoice) -> Iterator[None]:
    """Place ops on the chosen device: ``tf.device`` for CPU/GPU; nothing extra for an opened NPU (its
    ``as_default()`` already made it the default device for every ``tf.function``)."""
    if choice.kind == "npu":
        yield
        return
    import tensorflow as tf

    with tf.device(choice.device):
        yield


def where_ops_ran(choice: Optional[DeviceChoice] = None) -> str:
    """Run a tiny ``tf.function`` (a float32 matmul) and return its output tensor's ``.device``.

    This is what a run's ``config.json`` and the notebooks' banner record: the device TensorFlow really used, e.g.
    ``/job:localhost/replica:0/task:0/device:CPU:0``. With ``choice`` it runs inside :func:`device_scope`.
    """
    import tensorflow as tf

    @tf.function(autograph=False)
    def probe(x):
        return tf.reduce_sum(tf.matmul(x, x))

    scope = device_scope(choice) if choice is not None else contextlib.nullcontext()
    with scope:
        out = probe(tf.ones((4, 4), tf.float32))
    return str(out.device)


def device_banner(choice: DeviceChoice, ran_on: Optional[str] = None) -> str:
    """One line for a notebook's set-up cell: the device used, where ops ran, and the NPU's status here."""
    import tensorflow as tf

    ran_on = ran_on if ran_on is not None else where_ops_ran(choice)
    parts = [f"Device: {choice.kind.upper()} — {choice.name} (ops ran on {ran_on}; TensorFlow {tf.__version__})"]
    if choice.kind != "gpu":
        gpus = gpu_names()
        parts.append(f"GPU: {', '.join(gpus)} (not used)" if gpus else "GPU: none found")
    if choice.kind == "npu":
        parts.append(
            "NPU: opened through npu_device"
            if "NPU" in ran_on
            else "NPU: opened through npu_device, but the probe op did NOT run on it"
        )
    else:
        importable, _ = npu_adapter_importable()
        parts.append(
            "NPU: adapter npu_device importable but not used in this run"
            if importable
            else NPU_NOT_RUN_LINE
        )
    return " · ".join(parts)


def environment_report(choice: Optional[DeviceChoice] = None) -> Dict[str, Any]:
    """Versions, devices and where ops ran, as plain JSON types for a run's ``config.json``."""
    import tensorflow as tf

    importable, reason = npu_adapter_importable()
    tf32: Optional[bool]
    try:
        tf32 = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    except Exception:  # noqa: BLE001 - very old TF
        tf32 = None
    report: Dict[str, Any] = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_name(),
        "gpus": gpu_names(),
        "tensor_float_32_execution": tf32,  # float32 matmuls on Ampere+ GPUs use TF32 when True
        "npu_adapter": {
            "module": NPU_ADAPTER_MODULE,
            "importable": importable,
            "reason": reason,
            "ascend_device_id": os.environ.get("ASCEND_DEVICE_ID"),
            "opened": _npu_activation.as_dict() if _npu_activation is not None else None,
        },
        "device": choice.as_dict() if choice is not None else None,
        "where_ops_ran": where_ops_ran(choice),
    }
    return report
