"""``gru4rec.devices``: detection, clear errors, where ops ran, and the NPU path against a FAKE adapter.

No test here executes anything on an NPU: the NPU tests import ``tests/fake_npu/npu_device`` (a recorder that runs
nothing) and say so in their names and output. Which real devices they see is whatever this machine has.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from gru4rec import devices
from gru4rec.devices import DeviceUnavailableError

FAKE_NPU_DIR = Path(__file__).resolve().parent / "fake_npu"
NO_NPU = "[no NPU executed: fake npu_device adapter from tests/fake_npu, a call recorder]"
HAS_GPU = bool(tf.config.list_physical_devices("GPU"))


@pytest.fixture
def no_adapter(monkeypatch):
    """Make ``import npu_device`` fail here whatever is installed (None in sys.modules stops the import)."""
    monkeypatch.setitem(sys.modules, "npu_device", None)
    devices._forget_npu_activation_for_tests()
    yield
    devices._forget_npu_activation_for_tests()


@pytest.fixture
def fake_npu(monkeypatch):
    """The fake adapter on sys.path, freshly imported by the code under test; removed again afterwards."""
    monkeypatch.delenv("NPU_LOOP_SIZE", raising=False)
    monkeypatch.delenv("GRU4REC_FAKE_NPU_IMPORT_ERROR", raising=False)
    monkeypatch.delenv("ASCEND_DEVICE_ID", raising=False)
    monkeypatch.syspath_prepend(str(FAKE_NPU_DIR))
    sys.modules.pop("npu_device", None)
    devices._forget_npu_activation_for_tests()
    print(NO_NPU)
    yield
    sys.modules.pop("npu_device", None)
    devices._forget_npu_activation_for_tests()


def _calls():
    return list(sys.modules["npu_device"].CALLS)


# ------------------------------------------------------------------------------------------- real devices, here


def test_auto_detection_picks_what_this_machine_has(no_adapter):
    choice = devices.resolve_device("auto")
    assert choice.kind == ("gpu" if HAS_GPU else "cpu")
    assert choice.requested == "auto"
    assert any(note.startswith("npu: npu_device not importable") for note in choice.notes)
    assert choice.name and choice.name != "unknown CPU"


def test_cpu_is_always_available(no_adapter):
    choice = devices.resolve_device("cpu")
    assert (choice.kind, choice.device) == ("cpu", "/device:CPU:0")
    assert choice.name == devices.cpu_name()


@pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU, so --device gpu is not an error here")
def test_device_gpu_without_a_gpu_raises():
    with pytest.raises(DeviceUnavailableError, match="--device gpu was asked for.*nothing was run"):
        devices.resolve_device("gpu")


@pytest.mark.skipif(not HAS_GPU, reason="no GPU on this machine: the GPU path was not run here")
def test_device_gpu_with_a_gpu_runs_there():
    choice = devices.resolve_device("gpu")
    assert choice.kind == "gpu"
    assert "GPU:0" in devices.where_ops_ran(choice)


def test_unknown_device_name_is_a_clear_error():
    with pytest.raises(ValueError, match="--device must be one of auto, cpu, gpu, npu"):
        devices.resolve_device("tpu")


def test_where_ops_ran_reports_a_cpu_device_string_here(no_adapter):
    choice = devices.resolve_device("cpu")
    ran = devices.where_ops_ran(choice)
    assert ran.endswith("device:CPU:0"), ran
    if not HAS_GPU:
        assert devices.where_ops_ran().endswith("device:CPU:0")


def test_banner_says_the_npu_path_was_not_run_here(no_adapter):
    banner = devices.device_banner(devices.resolve_device("cpu"))
    print(banner)
    assert "\n" not in banner
    assert banner.startswith("Device: CPU")
    assert devices.NPU_NOT_RUN_LINE in banner
    assert "device:CPU:0" in banner


def test_environment_report_is_json_and_records_where_ops_ran(no_adapter):
    report = devices.environment_report(devices.resolve_device("auto"))
    json.dumps(report)  # plain JSON types only
    assert report["tensorflow"] == tf.__version__
    assert report["where_ops_ran"].endswith(":0")
    assert report["npu_adapter"]["importable"] is False
    assert report["npu_adapter"]["opened"] is None
    assert report["device"]["kind"] in ("cpu", "gpu")


def test_device_npu_without_adapter_raises_no_npu_executed(no_adapter):
    print("[no NPU executed: npu_device is made unimportable here]")
    with pytest.raises(DeviceUnavailableError) as info:
        devices.resolve_device("npu")
    message = str(info.value)
    assert "--device npu was asked for" in message
    assert "npu_device is not importable" in message
    assert "TensorFlow 2.6.5" in message and "Python 3.7–3.9" in message and "CANN" in message
    assert message.endswith("nothing was run")


def test_npu_detection_never_imports_the_unrelated_npu_package(no_adapter, monkeypatch):
    class Tripwire:
        def __getattr__(self, name):
            raise AssertionError("gru4rec imported the unrelated PyPI package `npu`")

    monkeypatch.setitem(sys.modules, "npu", Tripwire())
    devices.resolve_device("auto")
    devices.environment_report()
    assert "import npu\n" not in Path(devices.__file__).read_text()


# ------------------------------------------------------------------------------------- NPU path, FAKE adapter


def test_npu_activation_order_with_fake_adapter_no_npu_executed(fake_npu):
    activation = devices.activate_npu("allow_mix_precision", loop_size=64)
    calls = _calls()
    print(NO_NPU, calls)
    names = [call[0] for call in calls]
    # NPU_LOOP_SIZE is in the environment before the import; options before open(); open() before as_default()
    assert calls[0] == ("import", "64")
    assert ("set_option", "precision_mode", "allow_mix_precision") in calls
    assert names.index("set_option") < names.index("open") < names.index("as_default")
    assert names.index("set_npu_loop_size") < names.index("open")
    assert ("set_npu_loop_size", 64) in calls
    assert ("open", 0) in calls
    assert activation.device == "/job:localhost/replica:0/task:0/device:NPU:0"
    assert activation.loop_size_set_by == "npu.set_npu_loop_size"


def test_npu_device_id_from_ascend_device_id_with_fake_adapter_no_npu_executed(fake_npu, monkeypatch):
    monkeypatch.setenv("ASCEND_DEVICE_ID", "3")
    choice = devices.resolve_device("npu", precision_mode="must_keep_origin_dtype")
    calls = _calls()
    print(NO_NPU, calls)
    assert ("open", 3) in calls and ("as_default", 3) in calls
    assert ("set_option", "precision_mode", "must_keep_origin_dtype") in calls
    assert (choice.kind, choice.name) == ("npu", "Ascend NPU 3")
    assert choice.device.endswith("device:NPU:3")


def test_npu_bad_ascend_device_id_is_a_clear_error_no_npu_executed(fake_npu, monkeypatch):
    monkeypatch.setenv("ASCEND_DEVICE_ID", "first")
    with pytest.raises(ValueError, match="ASCEND_DEVICE_ID='first' is not a device number"):
        devices.activate_npu()


def test_npu_open_failure_is_a_clear_error_without_fallback_no_npu_executed(fake_npu):
    import npu_device

    npu_device.FAIL_OPEN = "drv error: device 0 not found"
    try:
        with pytest.raises(DeviceUnavailableError) as info:
            devices.resolve_device("npu")
    finally:
        npu_device.FAIL_OPEN = None
    message = str(info.value)
    print(NO_NPU, message)
    assert "npu.open(0) failed" in message and "drv error" in message
    assert "nothing was run, no fallback" in message
    assert devices.npu_activation() is None
    assert "as_default" not in [call[0] for call in _calls()]


def test_npu_auto_skips_unopenable_adapter_loudly_no_npu_executed(fake_npu):
    import npu_device

    npu_device.FAIL_OPEN = "no device"
    try:
        with pytest.warns(RuntimeWarning, match="--device auto skipped the NPU"):
            choice = devices.resolve_device("auto")
    finally:
        npu_device.FAIL_OPEN = None
    print(NO_NPU, choice.notes)
    assert choice.kind in ("cpu", "gpu")
    assert any("did not open" in note and "no device" in note for note in choice.notes)


def test_npu_adapter_failing_to_import_is_reported_no_npu_executed(fake_npu, monkeypatch):
    monkeypatch.setenv("GRU4REC_FAKE_NPU_IMPORT_ERROR", "libascendcl.so: cannot open shared object file")
    with pytest.raises(DeviceUnavailableError, match="libascendcl.so"):
        devices.resolve_device("npu")
    assert devices.npu_adapter_importable()[0] is False


def test_npu_auto_prefers_the_fake_adapter_and_ops_still_ran_on_cpu_no_npu_executed(fake_npu):
    choice = devices.resolve_device("auto", loop_size=32)
    ran = devices.where_ops_ran(choice)
    report = devices.environment_report(choice)
    banner = devices.device_banner(choice)
    print(NO_NPU, ran, banner)
    assert choice.kind == "npu"
    assert report["npu_adapter"]["opened"]["loop_size"] == 32
    # the fake adapter places nothing: the ops really ran on the CPU (or GPU), which is what gets recorded
    assert "NPU" not in ran
    assert report["where_ops_ran"] == ran


def test_npu_second_activation_with_other_options_is_refused_no_npu_executed(fake_npu):
    first = devices.activate_npu("allow_mix_precision")
    assert devices.activate_npu("allow_mix_precision") is first
    with pytest.raises(ValueError, match="already open in this process"):
        devices.activate_npu("must_keep_origin_dtype")
    print(NO_NPU, _calls())
    assert [call[0] for call in _calls()].count("open") == 1


def test_npu_loop_size_can_change_on_the_open_device_no_npu_executed(fake_npu):
    first = devices.activate_npu("allow_mix_precision", loop_size=128)
    again = devices.activate_npu("allow_mix_precision", loop_size=16)  # e.g. BP, then BPTT(8) in one process
    print(NO_NPU, _calls())
    assert again.loop_size == 16 and first.loop_size == 128
    assert ("set_npu_loop_size", 16) in _calls()
    assert [call[0] for call in _calls()].count("open") == 1


def test_npu_unknown_precision_mode_or_option_is_refused_no_npu_executed(fake_npu):
    with pytest.raises(ValueError, match="precision_mode must be one of"):
        devices.activate_npu("fp8_everything")
    with pytest.raises(ValueError, match="has no option 'no_such_option'"):
        devices.activate_npu(options={"no_such_option": 1})
    assert "open" not in [call[0] for call in _calls()]
