"""A FAKE ``npu_device`` (Huawei TF Adapter 2.x) for the kit's tests. It executes nothing on any NPU.

It only records what ``gru4rec.devices.activate_npu`` calls, in order, so the tests can check that the options are
set before ``open()`` and that errors are reported clearly. It lives under ``tests/`` and is put on ``sys.path`` by a
test's ``monkeypatch`` only; the package never imports it. Unlike the real adapter it patches nothing in
TensorFlow, so every op of a test still runs on the CPU.

Knobs (module attributes, set by a test): ``FAIL_OPEN`` (a message: ``open()`` raises ``RuntimeError`` like the real
adapter's "Failed open npu device"), and the environment variable ``GRU4REC_FAKE_NPU_IMPORT_ERROR`` (a message:
importing this module raises ``ImportError``, as the real one does without the CANN libraries).
"""

import os

FAKE = True
CALLS = []  # ("global_options",), ("set_option", name, value), ("set_npu_loop_size", n), ("open", id), ...
FAIL_OPEN = None

if os.environ.get("GRU4REC_FAKE_NPU_IMPORT_ERROR"):
    raise ImportError(os.environ["GRU4REC_FAKE_NPU_IMPORT_ERROR"])

CALLS.append(("import", os.environ.get("NPU_LOOP_SIZE")))

_VALID_PRECISION_MODES = (
    "force_fp32",
    "allow_fp32_to_fp16",
    "force_fp16",
    "must_keep_origin_dtype",
    "allow_mix_precision",
    "allow_mix_precision_bf16",
)


class _Options:
    """Stands for ``NpuConfig``: a few options; assignments are recorded and validated like the real ones."""

    def __init__(self):
        object.__setattr__(self, "precision_mode", None)
        object.__setattr__(self, "op_compiler_cache_mode", "disable")

    def __setattr__(self, name, value):
        if not hasattr(self, name):
            raise AttributeError(f"fake NpuConfig has no option {name!r}")
        if name == "precision_mode" and value not in _VALID_PRECISION_MODES:
            raise ValueError(f"'{value}' not in {list(_VALID_PRECISION_MODES)}")
        CALLS.append(("set_option", name, value))
        object.__setattr__(self, name, value)


_OPTIONS = _Options()


def global_options():
    CALLS.append(("global_options",))
    return _OPTIONS


def set_npu_loop_size(loop_size):
    CALLS.append(("set_npu_loop_size", loop_size))


class _FakeHandle:
    def __init__(self, device_id):
        self.device_id = device_id

    def name(self):
        return f"/job:localhost/replica:0/task:0/device:NPU:{self.device_id}"

    def as_default(self):
        CALLS.append(("as_default", self.device_id))
        return self


def open(device_id=None):  # noqa: A001 - the adapter's own name
    CALLS.append(("open", device_id))
    if FAIL_OPEN:
        raise RuntimeError(f"Failed open npu device {device_id} : {FAIL_OPEN}")
    return _FakeHandle(device_id)
