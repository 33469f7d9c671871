import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEV_PHOTOS = SHARED / "clothing-photos-dev"
TRAIN_PHOTOS = SHARED / "clothing-photos-train"
# The shipped int8 model's Fashion-MNIST test accuracy, as measured (see its model card),
# rounded down: a regression below it fails.
SHIPPED_TEST_FLOOR = 0.95


def need(path, what):
    """Skip where the data is absent, except in CI, where its absence is a failure."""
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing at {path}")
        pytest.skip(f"{what} not found at {path}")
    return Path(path)


@pytest.fixture(scope="session")
def data_dir():
    from fashion_edge import dataset
    try:
        return dataset.find_data_dir()
    except dataset.DataError as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def dev_photos():
    return need(DEV_PHOTOS, "the shared development photos")


@pytest.fixture(scope="session")
def train_photos():
    return need(TRAIN_PHOTOS, "the shared training photos")


@pytest.fixture(scope="session")
def classifier():
    from fashion_edge import Classifier
    return Classifier()


def run_cli(*args, check=None, timeout=300, **kw):
    """Run the installed command as a user would; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "fashion_edge", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}, expected {check}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def run_cli_measuring_memory(*args, timeout=300):
    """run_cli in a child that reports its own peak memory: (CompletedProcess, peak MB).

    The child reads VmHWM, which exec resets, unlike ru_maxrss, which a child forked from this
    large test process inherits. The figure is the last line of its stderr, taken off there.
    """
    code = ("import sys; from fashion_edge.cli import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n"
            "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "    print(hwm.split()[1], file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    *rest, peak_kb = proc.stderr.rstrip("\n").split("\n")
    proc.stderr = "\n".join(rest) + ("\n" if rest else "")
    return proc, int(peak_kb) / 1024
