"""`bci pretrain`: pretraining on synthetic recordings, kill and resume, bad input."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
import torch

from bci.cli import main
from bci.models.decoder import load_network, network_info
from bci.models.training import torch_threads
from bci.pipelines.pretrain import pretrain
from tests.conftest import requires_kalunga

#: Two subjects x two runs of synthetic SSVEP (8 occipital channels, 256 Hz), 1 trial per class
DATA = ["--dataset", "SyntheticSSVEP", "--dataset-param", "n_trials=1"]
FAST = ["--batch-size", "4", "--threads", "1", "--seed", "3"]


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _weights(path) -> dict[str, torch.Tensor]:
    return load_network(path).state_dict()


class _Kill:
    """A Lightning callback that raises at the start of epoch ``epoch`` (a killed job)."""

    def __init__(self, epoch: int) -> None:
        import lightning.pytorch as pl

        outer = self

        class _Callback(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module) -> None:
                if trainer.current_epoch == outer.epoch:
                    raise _Killed(f"killed at epoch {trainer.current_epoch}")

        self.epoch = epoch
        self.callback = _Callback()


class _Killed(RuntimeError):
    pass


def test_bci_pretrain_writes_a_pretrained_file_with_its_preprocessing(tmp_path, capsys):
    out = tmp_path / "pre.bci"
    assert main(["pretrain", *DATA, "--out", str(out), "--max-epochs", "2", *FAST]) == 0
    printed = capsys.readouterr().out
    info = network_info(out)
    assert info["configuration"] == "small"
    assert info["n_epochs"] == 2
    assert len(info["history"]) == 2
    # 2 subjects x 2 runs; every sample is 8 chunks of 128 samples overlapping by 16
    assert [s["subjects"] for s in info["sources"]] == [[1, 2]]
    pre = info["preprocessing"]
    assert (pre["sfreq"], pre["l_freq"], pre["h_freq"], pre["clip"]) == (128.0, 0.5, 45.0, 20.0)
    assert len(pre["channels"]) == 22
    assert info["n_steps"] == 2 * int(np.ceil(info["n_train_samples"] / 4))
    assert f"2 epochs, {info['n_steps']} steps" in printed
    model = load_network(out)
    assert model.finetune is None
    assert model.n_chans == 22
    ckpt = tmp_path / "pre_checkpoints"
    assert (ckpt / "last.ckpt").is_file()
    assert json.loads((ckpt / "pretrain.json").read_text())["seed"] == 3


def test_killed_run_resumes_through_the_cli_to_the_uninterrupted_weights(tmp_path):
    full = tmp_path / "full.bci"
    assert main(["pretrain", *DATA, "--out", str(full), "--max-epochs", "3", *FAST]) == 0
    # the same run, killed at the start of its third epoch (after two checkpoints) ...
    killed = tmp_path / "killed.bci"
    kill = _Kill(2)
    with pytest.raises(_Killed):
        pretrain("SyntheticSSVEP", killed, dataset_params={"SyntheticSSVEP": {"n_trials": 1}},
                 max_epochs=3, batch_size=4, seed=3, n_threads=1, progress_bar=False,
                 callbacks=[kill.callback])
    assert not killed.exists()
    last = tmp_path / "killed_checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # the end of the second epoch
    # ... a new run into its folder is refused (it would overwrite the checkpoints) ...
    before = last.read_bytes()
    assert main(["pretrain", *DATA, "--out", str(killed), "--max-epochs", "3", *FAST]) == 2
    assert last.read_bytes() == before
    # ... and --resume continues it to the uninterrupted run's weights, bit for bit
    assert main(["pretrain", *DATA, "--out", str(killed), "--max-epochs", "3", *FAST,
                 "--resume"]) == 0
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert network_info(killed)["n_steps"] == network_info(full)["n_steps"]
    # the losses of all three epochs, the first two from before the kill
    assert network_info(killed)["history"] == network_info(full)["history"]
    assert [row["epoch"] for row in network_info(killed)["history"]] == [0, 1, 2]


def test_resume_errors_keep_the_previous_checkpoint(tmp_path, capsys):
    out = tmp_path / "pre.bci"
    # nothing to resume
    assert main(["pretrain", *DATA, "--out", str(out), "--max-epochs", "1", *FAST,
                 "--resume"]) == 2
    assert "Nothing to resume" in capsys.readouterr().err
    assert main(["pretrain", *DATA, "--out", str(out), "--max-epochs", "1", *FAST]) == 0
    ckpt = tmp_path / "pre_checkpoints"
    last = ckpt / "last.ckpt"
    good = last.read_bytes()
    # other settings
    assert main(["pretrain", *DATA, "--out", str(out), "--max-epochs", "2", "--batch-size", "2",
                 "--threads", "1", "--seed", "3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "Cannot resume the run" in err
    assert "batch_size (checkpoint 4, now 2)" in err
    # a truncated checkpoint: a clear error, the file is left as it was, no step file removed
    last.write_bytes(good[: len(good) // 2])
    steps = sorted(p.name for p in ckpt.glob("step=*.ckpt"))
    assert main(["pretrain", *DATA, "--out", str(out), "--max-epochs", "2", *FAST,
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is truncated or damaged" in err
    assert "last.ckpt" in err
    assert last.read_bytes() == good[: len(good) // 2]
    assert sorted(p.name for p in ckpt.glob("step=*.ckpt")) == steps
    # the intact step checkpoint still resumes (copied back as last.ckpt)
    last.write_bytes((ckpt / steps[0]).read_bytes())
    assert main(["pretrain", *DATA, "--out", str(out), "--max-epochs", "2", *FAST,
                 "--resume"]) == 0
    assert network_info(out)["n_epochs"] == 2


def test_montage_with_no_channel_in_common_is_a_clear_cli_error(tmp_path, capsys,
                                                                 monkeypatch):
    from bci.data import pretraining_corpus

    def foreign(subject):
        info = mne.create_info(["X1", "X2", "EMG"], 128.0, ch_types="eeg")
        rng = np.random.default_rng(subject)
        return [mne.io.RawArray(rng.normal(0, 1e-5, (3, 128 * 30)), info, verbose=False)]

    def source(name, **kwargs):
        return pretraining_corpus.RawRecordings(name, [1], foreign)

    monkeypatch.setattr(pretraining_corpus, "pretraining_source", source)
    assert main(["pretrain", "--dataset", "Foreign", "--out", str(tmp_path / "pre.bci"),
                 "--max-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "bci pretrain: error:" in err
    assert "No channel of the recording ['X1', 'X2', 'EMG'] is among the model's" in err
    assert not (tmp_path / "pre.bci").exists()


@pytest.mark.real_data
@requires_kalunga
def test_bci_pretrain_on_kalunga_leaving_subject_3_out(tmp_path, capsys):
    out = tmp_path / "pre.bci"
    # the README's command, one epoch
    assert main(["pretrain", "--dataset", "Kalunga2016", "--subjects", "1-11",
                 "--exclude-subjects", "3",
                 "--config", "small", "--out", str(out), "--max-epochs", "1"]) == 0
    info = network_info(out)
    assert info["sources"] == [{"name": "Kalunga2016",
                                "subjects": [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]}]
    # 115.4 min in all, less subject 3's runs and its twin (subject 7 run 0)
    assert 80 < info["minutes"]["Kalunga2016"] < 111.3
    assert "Saved the pretrained NeuroGPT (small)" in capsys.readouterr().out
    # the README's second command: resume to 2 epochs
    assert main(["pretrain", "--dataset", "Kalunga2016", "--subjects", "1-11",
                 "--exclude-subjects", "3", "--config", "small", "--out", str(out),
                 "--max-epochs", "2", "--resume"]) == 0
    resumed = network_info(out)
    assert resumed["n_epochs"] == 2
    assert resumed["n_steps"] == 2 * info["n_steps"]
    assert resumed["history"][0] == info["history"][0]


def test_bci_pretrain_on_two_processes_writes_once_with_the_global_batch(tmp_path):
    """The README's command for DDP on one machine: 2 CPU processes (gloo) on 127.0.0.1."""
    import subprocess
    import sys

    from tests.models._ddp_run import loopback_env

    out = tmp_path / "pre.bci"
    proc = subprocess.run([sys.executable, "-m", "bci.cli", "pretrain", *DATA, "--out",
                           str(out), "--max-epochs", "2", *FAST, "--devices", "2",
                           "--strategy", "ddp"], env=loopback_env(), capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 1 wrote nothing and printed nothing
    assert proc.stdout.count("Saved the pretrained NeuroGPT") == 1
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr
    info = network_info(out)
    # the global batch of 4 (2 a process): as many steps as on one process
    assert info["n_steps"] == 2 * int(np.ceil(info["n_train_samples"] / 4))
    assert [row["epoch"] for row in info["history"]] == [0, 1]
    ckpt = tmp_path / "pre_checkpoints"
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == ["last.ckpt",
                                                          f"step={info['n_steps']}.ckpt"]
    assert json.loads((ckpt / "pretrain.json").read_text())["batch_size"] == 4


@pytest.mark.slow  # ~30 s; the same processes as the test above, started by torchrun
def test_bci_pretrain_under_torchrun(tmp_path):
    """The README's torchrun launch, on one node: torchrun starts both processes."""
    import subprocess
    import sys

    from tests.models._ddp_run import loopback_env

    env = loopback_env()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                           "--nproc-per-node", "2", "--node-rank", "0", "--master-addr",
                           "127.0.0.1", "--master-port", env["MASTER_PORT"], "-m", "bci.cli",
                           "pretrain", *DATA, "--out", "pre.bci", "--max-epochs", "2", *FAST,
                           "--devices", "2", "--strategy", "ddp"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Saved the pretrained NeuroGPT") == 1
    info = network_info(tmp_path / "pre.bci")
    assert info["n_steps"] == 2 * int(np.ceil(info["n_train_samples"] / 4))
