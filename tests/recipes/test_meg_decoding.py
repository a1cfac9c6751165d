"""The MEG recipe, quick: simulated 306-channel subjects in a BIDS folder, `bci benchmark`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STAGED = Path("/work/shared/data/meg_ieeg")


def test_quick_meg_recipe(tmp_path, script_main, capsys):
    pytest.importorskip("mne_bids")
    evoked = STAGED / "mne-python" / "mne" / "io" / "tests" / "data" / "test-ave.fif.gz"
    if not evoked.is_file():
        pytest.skip(f"staged MEG files absent: {evoked}")
    assert script_main("recipes/meg_decoding.py")(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "meg_decoding.json").read_text())
    assert report["snr"] == [0.0, 2.0]
    assert set(report["scores"]) == {"TS+LR", "RANK+TS+LR"}
    for scores in report["scores"].values():
        assert scores["0"] < 0.5  # noise only: chance is 0.25 (4 classes, 40 trials)
        assert scores["2"] >= 0.9  # the planted templates at twice the noise RMS
    assert "RANK+TS+LR" in capsys.readouterr().out
    assert (tmp_path / "rank" / "results.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "bids").glob("sub-*")) == ["sub-01", "sub-02"]
