"""Data locations (bci._config) and the dataset resolvers built on them.

Precedence everywhere: an explicit path, then the dataset's MNE_DATASETS_<SIGN>_PATH, then
MNE_DATA (plus the dataset's folder), then ~/mne_data; each key read from the environment first,
then from MNE's configuration file. The tests run with a fake home (``_MNE_FAKE_HOME_DIR`` for
MNE's configuration file, ``HOME`` for ``~``), so nothing is read from or written to the real
``~/.mne``.
"""

from __future__ import annotations

import doctest
import json
import os
from pathlib import Path

import pytest

from bci import _config
from bci._config import config_help, dataset_path, mne_data_root
from bci.data import chbmit, loaders, reaching, seizure


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Give a fake home without MNE configuration, and no data variable in the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(home))
    for key in list(os.environ):
        if key == "MNE_DATA" or (key.startswith("MNE_DATASETS_") and key.endswith("_PATH")):
            monkeypatch.delenv(key)
    return home


def _write_mne_config(home: Path, **values: str) -> None:
    (home / ".mne").mkdir(exist_ok=True)
    (home / ".mne" / "mne-python.json").write_text(json.dumps(values))


def _files(folder: Path) -> dict[str, str]:
    """Map the files under ``folder`` to their contents (MNE's read lock, ``*.lock``, aside)."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def test_default_is_home_mne_data(home):
    assert mne_data_root() == home / "mne_data"
    assert dataset_path("BONN", "bonn_epilepsy") == home / "mne_data" / "bonn_epilepsy"
    assert dataset_path("CHBMIT") == home / "mne_data"
    assert _files(home) == {}  # a getter never writes a configuration


def test_mne_data_environment(home, tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    assert mne_data_root() == tmp_path / "data"
    assert dataset_path("BONN", "bonn_epilepsy") == tmp_path / "data" / "bonn_epilepsy"
    assert dataset_path("BONN") == tmp_path / "data"


def test_dataset_key_beats_mne_data(home, tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MNE_DATASETS_BONN_PATH", str(tmp_path / "bonn"))
    assert dataset_path("BONN", "bonn_epilepsy") == tmp_path / "bonn"
    assert dataset_path("bonn", "bonn_epilepsy") == tmp_path / "bonn"  # the sign is upper-cased
    # another dataset's key does not apply
    assert dataset_path("REACHING", "reaching") == tmp_path / "data" / "reaching"


def test_explicit_path_beats_everything(home, tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MNE_DATASETS_BONN_PATH", str(tmp_path / "bonn"))
    assert dataset_path("BONN", "bonn_epilepsy", tmp_path / "mine") == tmp_path / "mine"
    assert dataset_path("BONN", "bonn_epilepsy", "~/mine") == home / "mine"
    with pytest.raises(TypeError, match=r"^path must be str or PathLike, got int \(3\)"):
        dataset_path("BONN", "bonn_epilepsy", 3)


def test_mne_config_file_is_read_and_environment_wins(home, tmp_path, monkeypatch):
    _write_mne_config(home, MNE_DATA=str(tmp_path / "cfg_data"),
                      MNE_DATASETS_REACHING_PATH=str(tmp_path / "cfg_reaching"))
    before = _files(home)
    assert mne_data_root() == tmp_path / "cfg_data"
    assert dataset_path("REACHING", "reaching") == tmp_path / "cfg_reaching"
    assert dataset_path("BONN", "bonn_epilepsy") == tmp_path / "cfg_data" / "bonn_epilepsy"
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "env_data"))
    monkeypatch.setenv("MNE_DATASETS_REACHING_PATH", str(tmp_path / "env_reaching"))
    assert mne_data_root() == tmp_path / "env_data"
    assert dataset_path("REACHING", "reaching") == tmp_path / "env_reaching"
    assert _files(home) == before  # read, never written


def test_tilde_is_expanded(home, monkeypatch):
    monkeypatch.setenv("MNE_DATA", "~/somewhere")
    assert mne_data_root() == home / "somewhere"
    monkeypatch.setenv("MNE_DATASETS_CHBMIT_PATH", "~/chb")
    assert dataset_path("CHBMIT") == home / "chb"


def test_config_help_names_the_variables():
    assert config_help("bonn") == ("set MNE_DATASETS_BONN_PATH (or MNE_DATA) as an environment "
                                   "variable or with mne.set_config")


def test_docstring_example_runs(home):
    assert doctest.testmod(_config).failed == 0
    assert "MNE_DATASETS_BONN_PATH" not in os.environ


# --------------------------------------------------------------------------------------------
# the resolvers of bci.data follow the same precedence
# --------------------------------------------------------------------------------------------
def test_loaders_data_root(home, tmp_path, monkeypatch):
    assert loaders._mne_data_root() == home / "mne_data"
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    assert loaders._mne_data_root() == tmp_path


def test_bonn_root(home, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"not found at .*home/mne_data/bonn_epilepsy\. "
                                                r"Pass path=.* set MNE_DATASETS_BONN_PATH \(or "
                                                r"MNE_DATA\)"):
        seizure._bonn_root(None)
    (tmp_path / "data" / "bonn_epilepsy").mkdir(parents=True)
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    assert seizure._bonn_root(None) == tmp_path / "data" / "bonn_epilepsy"
    (tmp_path / "bonn").mkdir()
    monkeypatch.setenv("MNE_DATASETS_BONN_PATH", str(tmp_path / "bonn"))
    assert seizure._bonn_root(None) == tmp_path / "bonn"
    (tmp_path / "mine").mkdir()
    assert seizure._bonn_root(tmp_path / "mine") == tmp_path / "mine"


def test_reaching_resolve(home, tmp_path, monkeypatch):
    name = "center_out_data.mat"
    with pytest.raises(FileNotFoundError, match=rf"{name} not found at .*home/mne_data/reaching/"
                                                rf"{name}\. .*MNE_DATASETS_REACHING_PATH"):
        reaching._resolve(None, name)
    (tmp_path / "data" / "reaching").mkdir(parents=True)
    (tmp_path / "data" / "reaching" / name).write_bytes(b"")
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    assert reaching._resolve(None, name) == tmp_path / "data" / "reaching" / name
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / name).write_bytes(b"")
    monkeypatch.setenv("MNE_DATASETS_REACHING_PATH", str(tmp_path / "own"))
    assert reaching._resolve(None, name) == tmp_path / "own" / name
    (tmp_path / "other.mat").write_bytes(b"")
    # an explicit path: the file itself, or its folder
    assert reaching._resolve(tmp_path / "other.mat", name) == tmp_path / "other.mat"
    assert reaching._resolve(tmp_path / "own", name) == tmp_path / "own" / name


def test_chbmit_data_root(home, tmp_path, monkeypatch):
    assert chbmit._data_root(None) == home / "mne_data"
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "data"))
    assert chbmit._data_root(None) == tmp_path / "data"  # MNE_DATA itself, no sub-folder
    monkeypatch.setenv("MNE_DATASETS_CHBMIT_PATH", str(tmp_path / "chb"))
    assert chbmit._data_root(None) == tmp_path / "chb"
    assert chbmit._data_root(str(tmp_path / "mine")) == tmp_path / "mine"
    with pytest.raises(TypeError, match="path must be str or PathLike"):
        chbmit._data_root(1.5)
