"""The CPU a figure was measured on: its name and the instructions int8 inference depends on.

onnxruntime picks its int8 kernels by these: VNNI on x86 and the dot-product instructions on
arm64 make int8 much faster than fp32; without them the gain is smaller, so a speed figure
means little without the CPU beside it.
"""
import platform
from pathlib import Path

ARM_PARTS = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
             "0xd40": "Neoverse-V1", "0xd4f": "Neoverse-V2", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710"}


def cpuinfo():
    """/proc/cpuinfo's first processor as {key: value}; empty where there is none (macOS, Windows, emulators)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def arm_dotprod_hwcap():
    """Whether the kernel says this arm64 CPU has the int8 dot-product instructions; None if it cannot tell.

    The auxiliary vector answers where /proc/cpuinfo is absent (containers, emulators).
    """
    try:
        import ctypes
        hwcap = ctypes.CDLL(None).getauxval(16)  # AT_HWCAP
    except (OSError, AttributeError):
        return None
    return bool(hwcap & (1 << 20))  # HWCAP_ASIMDDP


def describe():
    """{"name", "arch", "cores", "avx2", "avx512_vnni", "avx_vnni", "arm_dotprod"}; a feature is None where it does not apply."""
    import os
    info, arch = cpuinfo(), platform.machine().lower()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    x86, arm = arch in ("x86_64", "amd64", "i686"), arch in ("aarch64", "arm64")
    name = info.get("model name") or ARM_PARTS.get(info.get("CPU part", "")) or platform.processor() or arch
    known = bool(flags)
    return {"name": name, "arch": arch, "cores": os.cpu_count(),
            "avx2": ("avx2" in flags) if x86 and known else None,
            "avx512_vnni": ("avx512_vnni" in flags) if x86 and known else None,
            "avx_vnni": ("avx_vnni" in flags) if x86 and known else None,
            "arm_dotprod": (("asimddp" in flags) if known else arm_dotprod_hwcap()) if arm else None}


def summary(cpu=None):
    """One line: "AMD EPYC, x86_64, 2 cores: AVX2, no AVX-512 VNNI"."""
    cpu = cpu or describe()
    names = {"avx2": "AVX2", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "arm_dotprod": "int8 dot product"}
    features = [("" if cpu[k] else "no ") + label for k, label in names.items() if cpu[k] is not None]
    return f"{cpu['name']}, {cpu['arch']}, {cpu['cores']} cores" + (f": {', '.join(features)}" if features else "")
