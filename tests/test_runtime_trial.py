"""Choosing the CPU runtime for ``--precision auto`` by measurement, kept per bundle and
machine; the machine's description; and the thread budget (nothing spins)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scenecls.errors import UsageError
from scenecls.model.bundle import load_bundle
from scenecls.model.runtimes import cpu, trial
from scenecls.model.runtimes.cpu import ISA_FLAGS, CpuInfo, cpu_info


def test_the_machine_is_described_with_the_instruction_sets_that_matter() -> None:
    info = cpu_info()
    assert info.model and info.cpus >= 1
    assert list(info.isa) == list(ISA_FLAGS)  # AVX2, AVX-512, BF16, VNNI, AMX
    line = info.describe()
    for name in ISA_FLAGS:
        assert f"{name} " in line
    if sys.platform == "linux":  # /proc/cpuinfo answers every one of them
        assert all(v is not None for v in info.isa.values())


def test_the_machine_key_changes_with_an_instruction_set_cap(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    plain = cpu_info()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = cpu_info()
    assert plain.key != capped.key
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in capped.describe()
    other = CpuInfo("Another CPU", dict(plain.isa), plain.cpus)
    assert other.key != CpuInfo(plain.model, dict(plain.isa), plain.cpus).key


class _Fake:
    """A stand-in encoder: the reference's embeddings (optionally bent) after a delay."""

    runtime, device, precision = "openvino", "cpu", "fp32"

    def __init__(self, reference, seconds: float, bend: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self.reference, self.seconds, self.bend = reference, seconds, bend
        self.embed_dim = reference.embed_dim

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        import time

        time.sleep(self.seconds * len(pixels))
        out = self.reference(pixels)
        if self.bend:
            out = out + self.bend * np.roll(out, 1, axis=1)
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def _with_fakes(monkeypatch, fakes: dict) -> list[str]:  # type: ignore[no-untyped-def]
    """Make ``trial._build`` return the real reference, and for other names the fake
    (or raise it when it is an exception). Returns the names built, in order."""
    real = trial._build
    built: list[str] = []

    def build(bundle, name, threads):  # type: ignore[no-untyped-def]
        built.append(name)
        if name == trial.REFERENCE:
            return real(bundle, name, threads)
        fake = fakes[name]
        if isinstance(fake, Exception):
            raise fake
        return fake(real(bundle, trial.REFERENCE, threads))

    monkeypatch.setattr(trial, "_build", build)
    return built


def test_the_fastest_agreeing_runtime_wins_and_the_others_say_why_not(
    tiny_bundle: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    bundle = load_bundle(tiny_bundle)
    _with_fakes(
        monkeypatch,
        {
            "openvino-fp32": lambda ref: _Fake(ref, 0.0),  # as fast as it gets, agrees
            "openvino-bf16": lambda ref: _Fake(ref, 0.0, bend=0.5),  # fast but wrong
            "openvino-int8": RuntimeError("cannot compile here"),
        },
    )
    monkeypatch.setattr(trial, "NOT_WORTH_MS", 0.0)
    candidates = ("onnxruntime-fp32", "openvino-fp32", "openvino-bf16", "openvino-int8")
    choice, encoder = trial.choose_cpu_runtime(bundle, 1, candidates, not_worth_ms=0.0)
    t = choice.trials
    assert "rejected" in t["openvino-bf16"] and "cosine to fp32" in t["openvino-bf16"]["rejected"]
    assert t["openvino-int8"] == {"rejected": "cannot compile here"}
    assert t["onnxruntime-fp32"]["cosine_min"] == 1.0
    assert t["openvino-fp32"]["cosine_min"] > 0.9999
    fastest = min(
        ("onnxruntime-fp32", "openvino-fp32"),
        key=lambda n: t[n]["batch1_ms"] + t[n]["batched_ms"],
    )
    assert choice.name == fastest
    assert encoder.runtime == choice.runtime
    line = choice.describe()
    assert "rejected (cosine to fp32" in line and "by trial" in line


def test_a_slow_candidate_loses(tiny_bundle: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bundle = load_bundle(tiny_bundle)
    _with_fakes(monkeypatch, {"openvino-fp32": lambda ref: _Fake(ref, 0.02)})
    choice, _ = trial.choose_cpu_runtime(
        bundle, 1, ("onnxruntime-fp32", "openvino-fp32"), not_worth_ms=0.0
    )
    assert choice.name == "onnxruntime-fp32"
    assert choice.trials["openvino-fp32"]["batch1_ms"] >= 20


def test_the_choice_is_kept_per_machine_and_measured_again_on_another(
    tiny_bundle: Path, monkeypatch, _isolated_home: Path
) -> None:  # type: ignore[no-untyped-def]
    bundle = load_bundle(tiny_bundle)
    built = _with_fakes(monkeypatch, {"openvino-fp32": lambda ref: _Fake(ref, 0.0)})
    names = ("onnxruntime-fp32", "openvino-fp32")
    first, _ = trial.choose_cpu_runtime(bundle, 1, names, not_worth_ms=0.0)
    assert not first.cached and sorted(set(built)) == sorted(names)
    kept = list((_isolated_home / "runtimes").glob("*.json"))
    assert len(kept) == 1
    assert json.loads(kept[0].read_text())["choice"]["name"] == first.name

    built.clear()
    again, encoder = trial.choose_cpu_runtime(bundle, 1, names, not_worth_ms=0.0)
    assert again.cached and again.name == first.name and built == [first.name]
    assert "cached trial" in again.describe() and encoder.runtime == again.runtime

    built.clear()  # another CPU (or a capped instruction set): a new trial
    monkeypatch.setattr(cpu, "cpu_info", lambda: CpuInfo("Some other CPU", {"AVX2": True}, 2))
    monkeypatch.setattr(trial, "cpu_info", cpu.cpu_info)
    other, _ = trial.choose_cpu_runtime(bundle, 1, names, not_worth_ms=0.0)
    assert not other.cached and len(list((_isolated_home / "runtimes").glob("*.json"))) == 2


def test_an_unreadable_kept_choice_is_measured_again(
    tiny_bundle: Path, _isolated_home: Path
) -> None:
    bundle = load_bundle(tiny_bundle)
    trial.choose_cpu_runtime(bundle, 1)
    (kept,) = (_isolated_home / "runtimes").glob("*.json")
    kept.write_text("{not json")
    choice, _ = trial.choose_cpu_runtime(bundle, 1)
    assert not choice.cached
    assert json.loads(kept.read_text())["choice"]["name"] == choice.name


def test_a_tiny_model_keeps_the_reference_without_a_trial(tiny_bundle: Path) -> None:
    import scenecls

    model = scenecls.load_model(tiny_bundle, device="cpu")
    assert (model.runtime, model.precision) == ("onnxruntime", "fp32")
    assert "no trial" in model.encoder_description


@pytest.mark.parametrize(
    ("value", "ok"),
    [("onnxruntime-fp32,openvino-int8", True), ("openvino-fp64", False), (" , ", False)],
)
def test_scenecls_runtimes_names_the_candidates(monkeypatch, value: str, ok: bool) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCENECLS_RUNTIMES", value)
    if ok:
        assert trial.requested_candidates() == ("onnxruntime-fp32", "openvino-int8")
    else:
        with pytest.raises(UsageError, match="SCENECLS_RUNTIMES"):
            trial.requested_candidates()


def test_a_bad_scenecls_runtimes_is_one_line_and_exit_2(tiny_bundle: Path, tmp_path: Path) -> None:
    import os

    import cv2

    cv2.imwrite(str(tmp_path / "x.jpg"), trial.probe_images(1)[0])
    env = dict(os.environ, SCENECLS_RUNTIMES="tensorrt-fp8")
    done = subprocess.run(
        [sys.executable, "-m", "scenecls", "classify", str(tmp_path / "x.jpg"),
         "--model", str(tiny_bundle)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "SCENECLS_RUNTIMES" in lines[0], done.stderr


def test_the_probe_images_are_the_same_every_time() -> None:
    a, b = trial.probe_images(), trial.probe_images()
    assert len(a) == 6 and all(x.shape == (360, 640, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert np.std(a[0]) > 30  # structure, not a flat field


# --- the thread budget -----------------------------------------------------------------


def test_onnx_runtime_threads_sleep_instead_of_spinning(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scenecls.model.runtimes.onnx import session_options

    monkeypatch.setenv("SCENECLS_THREADS", "3")
    so = session_options()
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert so.intra_op_num_threads == 3  # SCENECLS_THREADS still decides the encoder's


def test_loading_a_model_for_the_cpu_leaves_no_helper_pool_that_spins(tiny_bundle: Path) -> None:
    """In a fresh process: NumPy's BLAS has a pool of every CPU and OpenCV its own; once
    a model is loaded for the CPU, both are down to one thread."""
    code = (
        "import os, cv2, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from scenecls.model.runtimes.cores import helper_threads\n"
        "before = helper_threads()\n"
        "import scenecls\n"
        f"scenecls.load_model({str(tiny_bundle)!r}, device='cpu')\n"
        "print(before['blas'], before['opencv'], *helper_threads().values())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    blas0, cv0, opencv, blas = map(int, done.stdout.split())
    assert (opencv, blas) == (1, 1)
    import os

    if len(os.sched_getaffinity(0)) > 1:  # there was something to take away
        assert blas0 > 1 and cv0 > 1


def test_a_rejected_candidate_gives_the_cause_not_the_source_location() -> None:
    error = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:117:\n"
        "Exception from src/inference/src/dev/plugin.cpp:54:\n"
        "Check '!getSupportedPrimitiveDescriptors().empty()' failed at node.cpp:345:\n"
        "Supported primitive descriptors list is empty for node: Softmax\n"
    )
    assert trial._reason(error) == "Supported primitive descriptors list is empty for node: Softmax"
    assert trial._reason(RuntimeError("")) == "RuntimeError"
    assert len(trial._reason(RuntimeError("x" * 500))) == 120
