"""ContactSetNet: any electrode set, invariance over contacts, masks, region mapping, errors.

The shared network contract (shape, seeds, gradients, overfitting, config) runs on it in
test_networks.py through the registry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.models._threads import torch_threads
from bci.models.contact_set import (
    ContactSetNet,
    contact_regions_from_names,
    place_contacts,
    slot_layout,
)

LAYOUT = ("hippocampus", "hippocampus", "amygdala", "insula", "insula")
N_TIMES = 64


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _model(pooling="region", seed=0, **kwargs) -> ContactSetNet:
    torch.manual_seed(seed)
    return ContactSetNet(len(LAYOUT), 3, N_TIMES, sfreq=100.0, contact_regions=LAYOUT,
                         pooling=pooling, **kwargs).double().eval()


def _x(batch=4, n_chans=5, seed=1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n_chans, N_TIMES, generator=gen, dtype=torch.float64)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_regions_and_shapes():
    model = _model()
    assert model.regions == ("hippocampus", "amygdala", "insula")
    assert model.slot_region_ids.tolist() == [0, 0, 1, 2, 2]
    assert "slot_region_ids" not in model.state_dict()  # rebuilt from the config
    assert model.min_n_times == 3 * 15 - 2
    with torch.no_grad():
        assert model(_x()).shape == (4, 3)
        # any number of contacts through forward_contacts: 1, 2 and 9 contacts
        for ids in ([2], [0, 1], [0, 1, 2, 0, 1, 2, 0, 1, 2]):
            out = model.forward_contacts(_x(n_chans=len(ids)), torch.tensor(ids))
            assert out.shape == (4, 3)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("pooling", ["region", "contact"])
def test_permuting_contacts_with_their_regions_changes_nothing(pooling):
    model, x = _model(pooling), _x()
    ids = model.slot_region_ids
    with torch.no_grad():
        ref = model(x)
        for seed in range(3):
            perm = torch.randperm(len(LAYOUT), generator=torch.Generator().manual_seed(seed))
            _close(model.forward_contacts(x[:, perm], ids[perm]), ref)
        # per-window region ids (batch, n_contacts): a different order for every window
        perms = torch.stack([torch.randperm(len(LAYOUT), generator=torch.Generator()
                                            .manual_seed(10 + b)) for b in range(4)])
        xp = torch.stack([x[b, perms[b]] for b in range(4)])
        _close(model.forward_contacts(xp, ids[perms]), ref)
        # within a region, swapping slots of forward's fixed layout changes nothing either
        _close(model(x[:, [1, 0, 2, 4, 3]]), ref)
        # but a contact moved to another region does change the output: regions are used
        assert not torch.allclose(model.forward_contacts(x, torch.tensor([0, 0, 1, 2, 1])), ref)


@pytest.mark.parametrize("pooling", ["region", "contact"])
def test_absent_contacts_are_ignored(pooling):
    model, x = _model(pooling), _x()
    ids = model.slot_region_ids
    with torch.no_grad():
        # a zero slot in forward == the contact not given at all
        x0 = x.clone()
        x0[:, 3] = 0.0
        keep = [0, 1, 2, 4]
        _close(model(x0), model.forward_contacts(x[:, keep], ids[keep]))
        # a masked contact's samples do not matter, nor does a region id of -1
        mask = torch.ones(4, len(LAYOUT), dtype=torch.bool)
        mask[:, 3] = False
        garbage = x.clone()
        garbage[:, 3] = 1e3 * torch.randn(4, N_TIMES, dtype=torch.float64)
        _close(model.forward_contacts(garbage, ids, mask), model(x0))
        _close(model.forward_contacts(garbage, torch.tensor([0, 0, 1, -1, 2])), model(x0))
        # a whole region absent in one window only: the other windows are unchanged
        x1 = x.clone()
        x1[2, 2] = 0.0
        out = model(x1)
        _close(out[[0, 1, 3]], model(x)[[0, 1, 3]])
        _close(out[2:3], model.forward_contacts(x[2:3, [0, 1, 3, 4]], ids[[0, 1, 3, 4]]))
    # no gradient reaches an absent contact
    xg = x0.clone().requires_grad_(True)
    model(xg).sum().backward()
    assert torch.equal(xg.grad[:, 3], torch.zeros(4, N_TIMES, dtype=torch.float64))
    assert (xg.grad[:, 0] != 0).any()


def test_batch_norm_statistics_skip_absent_contacts():
    # training mode: BatchNorm uses the statistics of the present contacts only, so padding a
    # window with absent slots changes nothing even while training
    model = _model(drop_prob=0.0).train()
    x = _x()
    x0 = x.clone()
    x0[:, 3] = 0.0
    keep = [0, 1, 2, 4]
    ids = model.slot_region_ids
    _close(model(x0), model.forward_contacts(x[:, keep], ids[keep]))


def test_region_pooling_is_a_mean_over_contacts():
    # Du-IN pooling: a region token is the mean of its contacts, so giving the only amygdala
    # contact twice changes nothing; with one token per contact (MVPFormer) it does
    x = _x()
    dup = [0, 1, 2, 2, 3, 4]
    for pooling, same in (("region", True), ("contact", False)):
        model = _model(pooling)
        ids = model.slot_region_ids
        with torch.no_grad():
            out = model.forward_contacts(x[:, dup], ids[dup])
            assert torch.allclose(out, model(x), rtol=0, atol=1e-12) is same


def test_window_without_trained_contact_raises():
    model = _model()
    x = _x(batch=2)
    mask = torch.tensor([[True] * 5, [False] * 5])
    with pytest.raises(ValueError, match=r"Window 1 of the batch has no contact in a trained "
                                         r"region \(trained: \['hippocampus', 'amygdala', "
                                         r"'insula'\]\).*contact_regions_from_names"):
        model.forward_contacts(x, model.slot_region_ids, mask)
    with pytest.raises(ValueError, match=r"Window 0 .* no contact in a trained region"):
        model.forward_contacts(x[:, :2], torch.tensor([-1, -1]))
    # a window that is zero everywhere is a flat recording: decoded, all slots present
    with torch.no_grad():
        assert torch.isfinite(model(torch.zeros(2, 5, N_TIMES, dtype=torch.float64))).all()


def test_forward_contacts_input_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"region_ids must lie in \[-1, 2\] .* got values from "
                                         r"0 to 3"):
        model.forward_contacts(_x(n_chans=2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"region_ids must have shape \(n_contacts=2,\)"):
        model.forward_contacts(_x(n_chans=2), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="region_ids must be integers, got torch.float32"):
        model.forward_contacts(_x(n_chans=2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(batch=4, "
                                         r"n_contacts=2\)"):
        model.forward_contacts(_x(n_chans=2), torch.tensor([0, 1]), torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, n_contacts, n_times=64\), "
                                         r"got \(4, 2, 65\)"):
        model.forward_contacts(torch.zeros(4, 2, 65, dtype=torch.float64), torch.tensor([0, 1]))


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"contact_regions": ["a", "b"]}, ValueError,
     r"contact_regions must name the region of each of the n_chans=5 slots, got 2 names"),
    ({"contact_regions": "abcde"}, TypeError, r"contact_regions must be a sequence of region "
                                              r"names \(str\), got str"),
    ({"contact_regions": ["a", "b", "", "c", "d"]}, ValueError, "empty region name"),
    ({"pooling": "regions"}, ValueError, r"Unknown pooling 'regions'. Did you mean 'region'"),
    ({"emb_dim": 30, "n_heads": 4}, ValueError, r"emb_dim=30 must be a multiple of n_heads=4"),
    ({"n_layers": -1}, ValueError, r"n_layers must be an int >= 0"),
])
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ContactSetNet(5, 2, 64, **kwargs)


def test_contact_regions_from_names():
    regions = {"LAH": "hippocampus", "RAM": "amygdala", "TP'": "temporal_pole",
               "X7": "insula"}
    names = ["LAH1", "LAH12", "RAM-3", "X7", "X8", "WM1", "TP'2"]
    assert contact_regions_from_names(names, regions) == [
        "hippocampus", "hippocampus", "amygdala", "insula", None, None, "temporal_pole"]
    with pytest.raises(TypeError, match="regions must be"):
        contact_regions_from_names(names, [("LAH", "hippocampus")])
    with pytest.raises(TypeError, match=r"regions\['LAH'\] must be"):
        contact_regions_from_names(names, {"LAH": 3})


def test_slot_layout_and_place_contacts():
    subj_a = ["hc", "hc", "amy", None]
    subj_b = ["amy", "amy", "ins"]
    layout = slot_layout([subj_a, subj_b])
    assert layout == ("hc", "hc", "amy", "amy", "ins")
    X = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3) + 1.0
    before = X.copy()
    slots = place_contacts(X, subj_a, layout, subject="sub-a")
    np.testing.assert_array_equal(X, before)  # not modified
    assert slots.shape == (2, 5, 3)
    assert slots.dtype == np.float32
    np.testing.assert_array_equal(slots[:, 0], X[:, 0])
    np.testing.assert_array_equal(slots[:, 1], X[:, 1])
    np.testing.assert_array_equal(slots[:, 2], X[:, 2])
    assert not slots[:, 3:].any()  # second amygdala and insula slots absent; None left out
    with pytest.raises(ValueError, match="No contact of any subject has a region"):
        slot_layout([[None], []])


def test_place_contacts_errors():
    layout = ("hippocampus", "insula")
    X = np.ones((2, 3, 10))
    with pytest.raises(ValueError, match=r"sub-07 has no contact in a trained region: its "
                                         r"regions are \['cingulate', 'orbitofrontal'\], the "
                                         r"model was trained on \['hippocampus', 'insula'\]\. "
                                         r"Check the contact -> region mapping"):
        place_contacts(X, ["cingulate", "orbitofrontal", None], layout, subject="sub-07")
    with pytest.raises(ValueError, match=r"its regions are none"):
        place_contacts(X, [None, None, None], layout, subject="sub-08")
    with pytest.raises(ValueError, match=r"sub-09 has 2 contacts in region 'insula', the layout "
                                         r"has 1 slots for it.*slot_layout"):
        place_contacts(X, ["insula", "insula", "hippocampus"], layout, subject="sub-09")
    with pytest.raises(ValueError, match=r"contact_regions of sub-10 has 2 entries for 3 "
                                         "contacts"):
        place_contacts(X, ["insula", "insula"], layout, subject="sub-10")


def test_trains_across_subjects_with_train_model():
    # the one training path: slots of three simulated subjects with different electrodes,
    # trained on two, decodes the planted effect in the third (no label of it seen)
    from bci.data.datamodule import EEGDataModule
    from bci.data.synthetic import make_multicontact_ieeg
    from bci.models.classifier import scale_epochs
    from bci.models.inference import predict_proba
    from bci.models.training import train_model

    data = make_multicontact_ieeg(n_subjects=3, n_trials=16, snr=2.0, random_state=0)
    regions = [contact_regions_from_names(e.ch_names, data.regions) for e in data.epochs]
    layout = slot_layout(regions)
    Xs = [place_contacts(scale_epochs(e.get_data(), "epoch"), r, layout, subject=s)
          for e, r, s in zip(data.epochs, regions, data.subjects, strict=True)]
    ys = [(e.events[:, 2] == 2).astype(int) for e in data.epochs]
    torch.manual_seed(0)
    model = ContactSetNet(len(layout), 2, Xs[0].shape[2], sfreq=250.0, contact_regions=layout)
    dm = EEGDataModule(np.concatenate(Xs[:2]), np.concatenate(ys[:2]), batch_size=16,
                       val_fraction=0.0, random_state=0)
    result = train_model(model, dm, max_epochs=5, lr=3e-3, seed=0, n_threads=1)
    accuracy = (predict_proba(result.model, Xs[2]).argmax(1) == ys[2]).mean()
    assert accuracy >= 0.8, accuracy


def test_deep_classifier_trains_and_rebuilds_it():
    # the scikit-learn wrapper (MOABB, bci benchmark, decoder files) takes it by name; the
    # layout travels in the network's config through JSON, and the rebuilt network predicts
    # the same
    import json

    from bci.models.classifier import DeepClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, len(LAYOUT), N_TIMES))
    X[:12, 3] = 0.0  # half of the windows without their first insula contact
    y = np.array(["rest", "task"] * 12)
    X[y == "task", 0] *= 3.0  # hippocampus contact louder in task windows
    clf = DeepClassifier("ContactSetNet", scaling="none", max_epochs=2, batch_size=8, seed=0,
                         n_threads=1,
                         model_params={"contact_regions": list(LAYOUT), "n_layers": 1})
    clf.fit(X, y)
    assert clf.model_.regions == ("hippocampus", "amygdala", "insula")
    meta, state = clf._network_state()
    meta = json.loads(json.dumps(meta))
    rebuilt = DeepClassifier._from_network_state(meta, state)
    np.testing.assert_array_equal(rebuilt.predict_proba(X), clf.predict_proba(X))
    assert rebuilt.model_.slot_region_ids.tolist() == [0, 0, 1, 2, 2]


def test_docstring_examples_run():
    import doctest

    from bci.models import contact_set

    result = doctest.testmod(contact_set)
    assert result.attempted >= 8
    assert result.failed == 0
