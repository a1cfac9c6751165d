"""``bci export --format nir`` on network files, and network files themselves."""

from __future__ import annotations

import json
import zipfile

import nir
import numpy as np
import pytest
import torch

from bci.cli import main
from bci.hw.nir_export import load_nir
from bci.models.decoder import load_decoder, load_network, save_network
from bci.models.spiking.ibmi import SNN3D, GRUDecoder, SNNStreaming


@pytest.fixture
def snn():
    torch.manual_seed(0)
    model = SNNStreaming(4, 2, sfreq=20.0, n_hidden=8, learn_tau=True).eval()
    with torch.no_grad():
        model.output_scale.copy_(torch.tensor([3.0, 0.5]))
    return model


def test_network_file_round_trip(snn, tmp_path):
    path = save_network(snn, tmp_path / "a" / "snn.bci", info={"dataset": "synthetic"})
    back = load_network(path)
    assert type(back) is SNNStreaming
    assert not back.training
    assert back.get_config() == snn.get_config()
    for key, value in snn.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "bci-network"
    assert manifest["info"] == {"dataset": "synthetic"}
    assert manifest["network"]["model"] == "SNNStreaming"
    with pytest.raises(ValueError, match="is a network file.*load_network"):
        load_decoder(path)


def test_network_file_errors(snn, tmp_path):
    with pytest.raises(TypeError, match="save_network saves the networks"):
        save_network(torch.nn.Linear(2, 2), tmp_path / "x.bci")
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_network(snn, tmp_path / "x.bci", info={"bad": object()})
    with pytest.raises(FileNotFoundError, match="No network file"):
        load_network(tmp_path / "missing.bci")
    (tmp_path / "junk.bci").write_text("junk")
    with pytest.raises(ValueError, match="not a bci network or decoder file"):
        load_network(tmp_path / "junk.bci")
    path = save_network(snn, tmp_path / "snn.bci")
    with zipfile.ZipFile(path) as zf:
        manifest, payload = zf.read("manifest.json"), bytearray(zf.read("network.pt"))
    payload[-30] ^= 0xFF
    with zipfile.ZipFile(tmp_path / "bad.bci", "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.writestr("network.pt", bytes(payload))
    with pytest.raises(ValueError, match="damaged"):
        load_network(tmp_path / "bad.bci")


def test_cli_exports_a_network_file_to_nir(snn, tmp_path, capsys):
    model_file = save_network(snn, tmp_path / "snn.bci")
    out = tmp_path / "snn.nir"
    assert main(["export", "--format", "nir", str(model_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Exported SNNStreaming" in printed
    assert "lif_hidden (LIF)" in printed
    assert "dt=0.05 s" in printed
    graph = nir.read(out)
    assert graph.metadata["bci_model"] == "SNNStreaming"
    back = load_nir(out)
    x = torch.poisson(torch.full((2, 4, 30), 2.0), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (back.forward_sequence(x) - snn.forward_sequence(x)).abs().max().item() == 0
    assert main(["export", str(model_file), "--out", str(out), "--dt", "1e-4"]) == 0
    np.testing.assert_allclose(float(nir.read(out).metadata["dt"]), 1e-4)


def test_cli_export_errors_exit_2(tmp_path, capsys):
    gru = save_network(GRUDecoder(4, 2, sfreq=20.0), tmp_path / "gru.bci")
    assert main(["export", "--format", "nir", str(gru), "--out", str(tmp_path / "g.nir")]) == 2
    assert "Cannot export GRUDecoder to NIR" in capsys.readouterr().err
    snn3d = save_network(SNN3D(4, 2, n_times=3, sfreq=20.0), tmp_path / "snn3d.bci")
    args = ["export", str(snn3d), "--out", str(tmp_path / "s.nir")]
    assert main(args) == 2
    assert "resets by 'subtract'" in capsys.readouterr().err
    assert main([*args, "--annotate-unsupported-reset"]) == 0
    assert main(["export", str(tmp_path / "none.bci"), "--out", str(tmp_path / "n.nir")]) == 2
    assert "No network file" in capsys.readouterr().err


def test_cli_reads_the_network_of_a_decoder_file(tmp_path, capsys):
    """Read the network of the DeepClassifier a `bci train --model` decoder file holds.

    Here EEGNet, which NIR cannot express: a clear error naming the model.
    """
    from bci.models.classifier import DeepClassifier
    from bci.models.decoder import Decoder
    from bci.models.registry import get_model

    torch.manual_seed(0)
    network = get_model("EEGNet", 4, 2, 128, sfreq=128.0)
    meta = {"model": "EEGNet", "config": network.get_config(),
            "params": DeepClassifier("EEGNet").get_params(), "classes": [0, 1],
            "n_features_in": 4, "n_times": 128, "scale_mean": None, "scale_std": None}
    clf = DeepClassifier._from_network_state(meta, network.state_dict())
    path = Decoder(estimator=clf, ch_names=["C3", "Cz", "C4", "Pz"], sfreq=128.0, tmin=0.0,
                   tmax=127 / 128, classes=["left", "right"]).save(tmp_path / "eegnet.bci")
    model = load_network(path)
    assert type(model).__name__ == "EEGNet"
    for key, value in network.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert main(["export", str(path), "--out", str(tmp_path / "e.nir")]) == 2
    err = capsys.readouterr().err
    assert "Cannot export EEGNet to NIR" in err
    assert "Exportable models: SNNStreaming" in err
