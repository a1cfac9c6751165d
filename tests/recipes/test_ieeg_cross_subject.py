"""The cross-subject intracranial recipe, in a small configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bci.models.contact_set import slot_layout

BONN = Path("/work/shared/data/bonn_epilepsy")


def test_small_ieeg_cross_subject(tmp_path, script_main, capsys):
    out = tmp_path / "ieeg.json"
    results = script_main("recipes/ieeg_cross_subject.py")(
        ["--n-subjects", "3", "--n-trials", "8", "--shots", "3", "--max-epochs", "2",
         "--poolings", "region", "contact", "unlabelled", "--bonn", "no", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    sim = results["simulated"]
    assert [row["subject"] for row in sim["subjects"]] == ["sub-01", "sub-02", "sub-03"]
    # the layout holds every subject's contacts: per region, the most any subject has
    regions = [row["contact_regions"] for row in sim["subjects"]]
    assert sim["layout"] == list(slot_layout(regions))
    for region in set(sim["layout"]):
        assert sim["layout"].count(region) == max(r.count(region) for r in regions)
    for row in sim["subjects"]:
        assert row["n_contacts"] == len(row["contact_regions"])
        for key in ("loso_region_k3", "loso_contact_k3", "loso_unlabelled_k3", "ts_lr_k3",
                    "net_subject_k3"):
            # 5 test trials per class: balanced accuracy is a multiple of 1/10
            assert 0.0 <= row[key] <= 1.0
            assert round(row[key] * 10, 6) == round(row[key] * 10)
    assert "bonn" not in results
    printed = capsys.readouterr().out
    assert ("Refused as expected: sub-new has no contact in a trained region: its regions are "
            "['orbitofrontal']") in printed
    assert "loso_region_k3" in printed
    assert "mean" in printed


def test_small_bonn_comparison(tmp_path, script_main):
    if not (BONN / "S").is_dir():
        pytest.skip(f"Bonn data absent: {BONN}")
    results = script_main("recipes/ieeg_cross_subject.py")(
        ["--shots", "2", "--max-epochs", "1", "--simulated", "no", "--bonn", "yes",
         "--bonn-path", str(BONN), "--out", str(tmp_path / "ieeg.json")])
    assert "simulated" not in results
    sites = results["bonn"]["sites"]
    assert [s["target"] for s in sites] == ["F", "N"]
    assert [s["trained_on"] for s in sites] == ["N vs S", "F vs S"]
    for site in sites:
        # the second halves (50 target + 50 seizure segments), 8 windows of 512 samples each
        assert site["n_test_windows"] == 800
        for key in ("cross_site", "cross_site_ts_lr", "ts_lr_k2", "net_site_k2"):
            assert 0.0 <= site[key] <= 1.0
