"""Test configuration: offline data paths, loopback-only LSL, headless plots.

Environment variables are set before any MNE/MOABB/pylsl call so that the suite never touches the
network: real recordings come from ``../shared/data`` when it is present (tests that need them are
skipped with a reason otherwise) and LSL stays on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MNE_DATA = SHARED / "data" / "mne_data"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["MOABB_DOWNLOAD_PROVIDER"] = "upstream"
if MNE_DATA.is_dir():
    os.environ["MNE_DATA"] = str(MNE_DATA)
# the staged non-MOABB recordings sit beside mne_data, not under it: point their loaders there
for _key, _folder in (("MNE_DATASETS_BONN_PATH", "bonn_epilepsy"),
                      ("MNE_DATASETS_DREAMS_PATH", "dreams_spindles"),
                      ("MNE_DATASETS_REACHING_PATH", "reaching")):
    if (SHARED / "data" / _folder).is_dir():
        os.environ[_key] = str(SHARED / "data" / _folder)
# LSL stays on this machine in tests: a loopback-only config the project writes itself (same
# content as ../shared/lsl_api.cfg), so a clean clone without ../shared is safe too. Set before
# the first pylsl call; real users keep their own LSL configuration.
os.environ["LSLAPICFG"] = str(SHARED / "lsl_api.cfg")
if not (SHARED / "lsl_api.cfg").is_file():
    import tempfile

    from bci.realtime.lsl import use_loopback_config

    use_loopback_config(Path(tempfile.gettempdir()) / f"bci-lsl-{getattr(os, 'getuid', int)()}")


def has_physionet() -> bool:
    return (MNE_DATA / "MNE-eegbci-data").is_dir()


def has_kalunga() -> bool:
    return (MNE_DATA / "MNE-ssvepexo-data").is_dir()


requires_physionet = pytest.mark.skipif(
    not has_physionet(),
    reason=f"PhysionetMI subject 1 is not staged at {MNE_DATA / 'MNE-eegbci-data'}",
)
requires_kalunga = pytest.mark.skipif(
    not has_kalunga(),
    reason=f"Kalunga2016 is not staged at {MNE_DATA / 'MNE-ssvepexo-data'}",
)


@pytest.fixture(autouse=True)
def _empty_benchmark_cache(tmp_path_factory, monkeypatch):
    """`bci benchmark` caches its cells (~/.cache/bci by default): each test gets an empty cache."""
    monkeypatch.setenv("BCI_CACHE_DIR", str(tmp_path_factory.mktemp("bci-cache")))


@pytest.fixture
def empty_mne_data(tmp_path, monkeypatch):
    """Point MNE/MOABB at an empty data root (as on a machine where nothing was downloaded)."""
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    for key in list(os.environ):
        if key.startswith("MNE_DATASETS_") and key.endswith("_PATH"):
            monkeypatch.delenv(key)
    return tmp_path
