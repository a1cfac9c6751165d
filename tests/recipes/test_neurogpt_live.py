"""The README's live Neuro-GPT flow: pretrain, fine-tune, `bci play` + `bci stream --decoder`."""

from __future__ import annotations

import json
import os

import pytest

from bci.cli import main
from bci.data.loaders import get_dataset
from bci.pipelines.pretrain import pretrain

from ..realtime._helpers import playing

pytest.importorskip("pylsl")


def test_finetuned_neurogpt_decodes_a_loopback_lsl_stream(tmp_path, capsys):
    dataset = get_dataset("SyntheticSSVEP", n_trials=4)
    pre = pretrain("SyntheticSSVEP", tmp_path / "pre.bci", subjects=[2],
                   dataset_params={"SyntheticSSVEP": {"n_trials": 4}}, config="small",
                   max_epochs=1, seed=0, progress_bar=False, n_threads=1)
    decoder = tmp_path / "s1_neurogpt.bci"
    assert main(["train", "--dataset", "SyntheticSSVEP", "--paradigm", "SSVEP", "--subjects",
                 "1", "--model", "NeuroGPT", "--pretrained", str(pre), "--finetune", "encoder",
                 "--threads", "1", "--max-epochs", "1", "--out", str(decoder)]) == 0
    raw = dataset.get_data([1])[1]["0"]["0"]
    fif = tmp_path / "s1_raw.fif"
    raw.save(fif, verbose=False)
    name = f"bci-neurogpt-{os.getpid()}"
    with playing(fif, name, "--loop", "--duration-s", "30"):
        record = tmp_path / "session"
        code = main(["stream", "--source", name, "--decoder", str(decoder), "--policy", "none",
                     "--stimulator", "none", "--record", str(record), "--duration-s", "10",
                     "--timeout-s", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((record / "summary.json").read_text())
    assert summary["samples_lost"] == 0
    assert summary["decisions"] >= 5  # 10 s at 0.1-s steps, once the first (4-s) window is full
    decode = summary["latency_ms"]["decode"]
    assert decode["n"] == summary["decisions"]
    assert 0 < decode["p50"] <= decode["p99"]
