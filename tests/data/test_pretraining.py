"""Pretraining data: channel mapping, signal preparation, chunking, corpus, data module."""

from __future__ import annotations

import gc
import logging
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from bci.data.pretraining import (
    NEUROGPT_CHANNELS,
    ChunkSpec,
    RecordingTooShortError,
    map_channels,
    prepare_raw,
    robust_scale,
)
from bci.data.pretraining_corpus import (
    MoabbRecordings,
    PretrainingCorpus,
    RawRecordings,
    Recording,
    total_minutes,
)
from bci.data.pretraining_datamodule import (
    ChunkDataset,
    ChunkSampler,
    PretrainingDataModule,
    split_recordings,
)
from bci.data.synthetic import KALUNGA_CHANNELS, make_continuous_eeg

# PhysionetMI's 64 channels as MNE's eegbci.standardize names them (MOABB's order)
PHYSIONET_64 = (
    "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
    "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz",
    "AF4", "AF8", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "FT7", "FT8", "T7", "T8",
    "T9", "T10", "TP7", "TP8", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7",
    "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2", "Iz",
)
SMALL = {"sfreq": 128.0, "chunk_s": 1.0, "overlap_s": 0.125, "n_chunks": 8}
TEN_TEN = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7",
           "P3", "Pz", "P4", "P8", "O1", "Oz", "O2")


# ------------------------------------------------------------------------------ mapping
def test_physionet_montage_fills_20_of_22_channels():
    m = map_channels(PHYSIONET_64)
    assert m.absent == ("T1", "T2")
    assert m.mask.sum() == 20
    assert m.present["T3"] == "T7"
    assert m.present["T4"] == "T8"
    assert m.present["T5"] == "P7"
    assert m.present["T6"] == "P8"
    assert m.present["Fp1"] == "Fp1"
    assert m.present["Oz"] == "Oz"
    assert len(m.dropped) == 44
    assert "FC5" in m.dropped
    assert "Iz" in m.dropped
    assert set(m.dropped) | set(m.present.values()) == set(PHYSIONET_64)


def test_kalunga_montage_fills_only_occipital_channels_and_zeros_the_rest():
    m = map_channels(KALUNGA_CHANNELS)
    assert m.present == {"O1": "O1", "Oz": "Oz", "O2": "O2"}
    assert m.dropped == ("PO3", "POz", "PO7", "PO8", "PO4")
    assert np.flatnonzero(m.mask).tolist() == [19, 20, 21]
    data = np.arange(8 * 5, dtype=float).reshape(8, 5) + 1
    out = m.apply(data)
    assert out.shape == (22, 5)
    assert not out[:19].any()  # nothing frontal is invented
    np.testing.assert_array_equal(out[19:], data[[1, 0, 2]])  # O1, Oz, O2 rows of the input
    epochs = np.stack([data, -data])  # fine-tuning epochs (n_epochs, n_chans, n_times)
    mapped = m.apply(epochs)
    assert mapped.shape == (2, 22, 5)
    np.testing.assert_array_equal(mapped[1], -out)


def test_names_match_case_insensitively_with_prefixes_suffixes_and_dots():
    m = map_channels(["EEG FP1-REF", "eeg t7-le", "C3..", "cz", "EEG T6-REF", "X1"])
    assert m.present == {"Fp1": "EEG FP1-REF", "T3": "eeg t7-le", "C3": "C3..", "Cz": "cz",
                         "T6": "EEG T6-REF"}
    assert m.dropped == ("X1",)
    # the model's channels may use 10-10 names too
    m2 = map_channels(["T3", "O1"], channels=["T7", "O1", "Fz"])
    assert m2.present == {"T7": "T3", "O1": "O1"}
    assert m2.absent == ("Fz",)
    # a second recording channel for the same electrode is dropped, the first used
    m3 = map_channels(["T7", "T3"], channels=["T3"])
    assert m3.present == {"T3": "T7"}
    assert m3.dropped == ("T3",)


def test_no_channel_in_common_is_a_clear_error():
    with pytest.raises(ValueError, match=r"No channel of the recording \['X1', 'EMG'\] is among "
                                         r"the model's channels \['Fp1', 'Fp2'"):
        map_channels(["X1", "EMG"])
    with pytest.raises(ValueError, match="same electrode twice"):
        map_channels(["T3"], channels=["T3", "T7"])
    with pytest.raises(TypeError, match="sequence of channel names"):
        map_channels("Cz")
    with pytest.raises(ValueError, match=r"must be \(\.\.\., n_chans=2, n_times\)"):
        map_channels(["Cz", "Oz"]).apply(np.zeros((3, 4)))


# ------------------------------------------------------------------------------ geometry
def test_chunk_geometry_of_the_paper_and_small_configurations():
    paper = ChunkSpec()
    assert (paper.chunk_samples, paper.step_samples, paper.sample_samples) == (500, 450, 14450)
    assert paper.n_chans == 22
    assert paper.channels == NEUROGPT_CHANNELS
    small = ChunkSpec(**SMALL)
    assert (small.chunk_samples, small.step_samples, small.sample_samples) == (128, 112, 912)
    np.testing.assert_array_equal(small.chunk_starts(10), 10 + 112 * np.arange(8))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"overlap_s": 2.0}, "overlap_s must be smaller than chunk_s"),
    ({"chunk_s": 1.001}, "chunk_s \\* sfreq must be a whole number"),
    ({"h_freq": 125.0}, "0 < l_freq < h_freq < sfreq / 2 = 125 Hz"),
    ({"l_freq": 50.0}, "l_freq < h_freq"),
    ({"sfreq": float("nan")}, "sfreq"),
    ({"n_chunks": 0}, "n_chunks"),
    ({"clip": -1.0}, "clip"),
])
def test_bad_chunk_spec(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChunkSpec(**kwargs)


def _ramp_recording(tmp_path, n_times: int, n_chans: int = 22, name: str = "ramp",
                    subject: int = 1) -> Recording:
    """Return a recording whose channel c at sample t holds ``1000 c + t`` (exact in float32)."""
    data = (1000 * np.arange(n_chans)[:, None] + np.arange(n_times)).astype(np.float32)
    path = tmp_path / f"{name}-{subject}.npy"
    np.save(path, data)
    return Recording(name, subject, "0", "0", str(path), n_times, (True,) * n_chans)


def test_chunks_are_exact_slices_of_the_recording(tmp_path):
    spec = ChunkSpec(**SMALL)
    n_times = 5000
    rec = _ramp_recording(tmp_path, n_times)
    ds = ChunkDataset([rec], spec, stride_s=1.0)  # 128 samples between samples
    assert len(ds) == (n_times - 912) // 128 + 1 == 32
    for i in (0, 1, len(ds) - 1):
        chunks = ds[i]["chunks"].numpy()
        assert chunks.shape == (8, 22, 128)
        assert chunks.dtype == np.float32
        offset = i * 128
        for k in range(8):
            start = offset + 112 * k
            expected = 1000 * np.arange(22)[:, None] + np.arange(start, start + 128)
            np.testing.assert_array_equal(chunks[k], expected)
        # consecutive chunks share exactly overlap_s * sfreq = 16 samples
        np.testing.assert_array_equal(chunks[:-1, :, -16:], chunks[1:, :, :16])
    assert ds.locate(len(ds) - 1)[1] + 912 <= n_times
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_items_span_recordings_in_order(tmp_path):
    spec = ChunkSpec(**SMALL)
    recs = [_ramp_recording(tmp_path, 912, subject=1), _ramp_recording(tmp_path, 3000, subject=2)]
    ds = ChunkDataset(recs, spec)  # stride: one sample span
    assert len(ds) == 1 + (3000 - 912) // 912 + 1 == 4
    assert [ds.locate(i) for i in range(4)] == [(0, 0), (1, 0), (1, 912), (1, 1824)]


def test_random_offsets_are_seeded_and_in_range(tmp_path):
    spec = ChunkSpec(**SMALL)
    rec = _ramp_recording(tmp_path, 4000)
    a = ChunkDataset([rec], spec, offsets="random", seed=3)
    b = ChunkDataset([rec], spec, offsets="random", seed=3)
    c = ChunkDataset([rec], spec, offsets="random", seed=4)
    keys = [(i, e) for i in range(len(a)) for e in range(5)]
    offs = [a.locate(k)[1] for k in keys]
    assert offs == [b.locate(k)[1] for k in keys]
    assert offs != [c.locate(k)[1] for k in keys]
    assert len(set(offs)) > len(keys) // 2  # epochs draw new starts
    assert all(0 <= o <= 4000 - 912 for o in offs)
    first = a[(1, 2)]["chunks"].numpy()[0, 0]
    np.testing.assert_array_equal(first, np.arange(a.locate((1, 2))[1], a.locate((1, 2))[1] + 128))


def test_sampler_is_a_seeded_permutation_per_epoch():
    s = ChunkSampler(10, shuffle=True, seed=1)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(i for i, _ in e0) == list(range(10)) == sorted(i for i, _ in e1)
    assert {e for _, e in e1} == {1}
    assert [i for i, _ in e0] != [i for i, _ in e1]
    s.set_epoch(0)
    assert list(s) == e0
    assert list(s) == e1  # without set_epoch, a pass takes the next epoch
    assert {e for _, e in s} == {2}
    assert list(ChunkSampler(4, shuffle=False)) == [(0, 0), (1, 0), (2, 0), (3, 0)]


def test_split_is_by_recording(tmp_path):
    recs = [_ramp_recording(tmp_path, 1000, subject=s) for s in range(10)]
    train, val = split_recordings(recs, 0.2, seed=0)
    assert len(val) == 2
    assert len(train) == 8
    assert {r.subject for r in train}.isdisjoint({r.subject for r in val})
    assert split_recordings(recs, 0.2, seed=0) == (train, val)
    assert split_recordings(recs[:1], 0.5) == (recs[:1], [])
    assert split_recordings(recs[:2], 0.9)[1] != []  # both sets keep a recording


# ------------------------------------------------------------------------------ signal
def test_prepare_raw_resamples_band_limits_and_scales():
    spec = ChunkSpec(sfreq=250.0)
    raw = make_continuous_eeg(40.0, ch_names=list(KALUNGA_CHANNELS), sfreq=256.0,
                              alpha_hz=10.0, alpha_rms_v=20e-6, random_state=0)
    # add 60 Hz mains on every channel: above h_freq = 45 Hz, it must go
    t = np.arange(raw.n_times) / 256.0
    raw._data += 50e-6 * np.sin(2 * np.pi * 60 * t)
    before = raw.get_data().copy()
    data, mask, mapping = prepare_raw(raw, spec)
    np.testing.assert_array_equal(raw.get_data(), before)  # the caller's raw is untouched
    assert data.shape == (22, 10000)
    assert data.dtype == np.float32
    assert mask.tolist() == mapping.mask.tolist()
    assert np.flatnonzero(mask).tolist() == [19, 20, 21]
    assert not data[~mask].any()
    freqs = np.fft.rfftfreq(10000, 1 / 250.0)
    power = np.abs(np.fft.rfft(data[20])) ** 2
    assert freqs[np.argmax(power)] == pytest.approx(10.0)  # the planted rhythm at Oz survives
    at = lambda f: power[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(60.0) < 1e-4 * at(10.0)  # mains removed
    for row in data[mask]:  # robust z-score: median 0, IQR 1.349
        assert np.median(row) == pytest.approx(0.0, abs=1e-5)
        q75, q25 = np.percentile(row, [75, 25])
        assert q75 - q25 == pytest.approx(1.349, rel=1e-3)


def test_prepare_raw_upsamples_physionet_rate():
    raw = make_continuous_eeg(10.0, ch_names=list(TEN_TEN), sfreq=160.0, random_state=1)
    data, mask, _ = prepare_raw(raw, ChunkSpec())
    assert data.shape == (22, 2500)
    assert mask.sum() == 20
    assert not mask[[7, 13]].any()


def test_robust_scale_clips_and_marks_flat_channels():
    x = np.vstack([np.r_[np.zeros(50), np.ones(50)], np.full(100, 3.0),
                   np.r_[np.linspace(-1, 1, 99), 1e6]])
    out, ok = robust_scale(x, clip=20.0)
    assert ok.tolist() == [True, False, True]
    assert not out[1].any()
    assert out[2, -1] == 20.0
    assert out.dtype == np.float32


def test_prepare_raw_bad_inputs():
    spec = ChunkSpec(**SMALL)
    raw = make_continuous_eeg(10.0, ch_names=["PO3", "PO4"], random_state=0)
    with pytest.raises(ValueError, match="No channel of the recording"):
        prepare_raw(raw, spec)
    low = make_continuous_eeg(10.0, ch_names=["Oz"], sfreq=80.0, alpha_hz=10.0, random_state=0)
    with pytest.raises(ValueError, match="A recording at 80 Hz cannot be band-limited"):
        prepare_raw(low, spec)
    short = make_continuous_eeg(5.0, ch_names=["Oz"], random_state=0)
    with pytest.raises(RecordingTooShortError, match=r"5 s, shorter than the 6.60547-s "
                                                     r"band-pass filter \(0.5-45 Hz\)"):
        prepare_raw(short, spec)
    nan = make_continuous_eeg(10.0, ch_names=["Oz"], random_state=0)
    nan._data[0, 100] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        prepare_raw(nan, spec)
    with pytest.raises(TypeError, match="raw"):
        prepare_raw(np.zeros((2, 10)), spec)


# ------------------------------------------------------------------------------ corpus
class _Loader:
    """Synthetic subjects (subject s: two runs, own montage) that count loads and live Raws."""

    def __init__(self, durations=(30.0, 20.0), montage=KALUNGA_CHANNELS):
        self.calls: list[int] = []
        self.alive: list[weakref.ref] = []
        self.max_alive_at_load = 0
        self.durations = durations
        self.montage = montage

    def __call__(self, subject):
        gc.collect()
        alive = sum(r() is not None for r in self.alive)
        self.max_alive_at_load = max(self.max_alive_at_load, alive)
        self.calls.append(subject)
        raws = [make_continuous_eeg(d, ch_names=list(self.montage), alpha_hz=6.0 + 2 * subject,
                                    random_state=100 * subject + i)
                for i, d in enumerate(self.durations)]
        self.alive += [weakref.ref(r) for r in raws]
        return raws


def _module(source, tmp_path, **kwargs):
    params = {**SMALL, "batch_size": 4, "val_fraction": 0.0, "cache_dir": tmp_path / "cache",
              **kwargs}
    return PretrainingDataModule([source] if not isinstance(source, list) else source, **params)


def test_held_out_subject_never_reaches_a_batch(tmp_path):
    loader = _Loader()
    source = RawRecordings("syn", [1, 2, 3], loader, exclude_subjects=[2])
    assert source.subjects == [1, 3]
    assert source.excluded == [2]
    dm = _module(source, tmp_path, val_fraction=0.3)
    dm.prepare_data()
    dm.setup()
    assert {r.subject for r in dm.recordings} == {1, 3}
    for ds in (dm.train_set, dm.val_set):
        assert {ds.recordings[ds.locate(i)[0]].subject for i in range(len(ds))} <= {1, 3}
    assert not list((tmp_path / "cache").rglob("sub-002_*.npy"))  # nothing of it prepared
    # content check: subject 2's planted 10 Hz rhythm is in no training chunk (1: 8 Hz, 3: 12)
    freqs = np.fft.rfftfreq(128, 1 / 128.0)
    for batch in dm.train_dataloader():
        spec = np.abs(np.fft.rfft(batch["chunks"][:, :, 20].numpy(), axis=-1)).mean((0, 1))
        assert freqs[np.argmax(spec)] in (8.0, 12.0)


def test_a_run_identical_to_a_held_out_run_is_left_out(tmp_path, caplog):
    twin = make_continuous_eeg(20.0, ch_names=list(KALUNGA_CHANNELS), random_state=7)
    own = make_continuous_eeg(20.0, ch_names=list(KALUNGA_CHANNELS), random_state=8)
    runs = {1: [twin.copy()], 2: [own, twin.copy()]}
    source = RawRecordings("syn", [1, 2], lambda s: runs[s], exclude_subjects=[1])
    corpus = PretrainingCorpus([source], ChunkSpec(**SMALL), tmp_path)
    with caplog.at_level(logging.WARNING, logger="bci"):
        recs = corpus.prepare()
    assert [(r.subject, r.run) for r in recs] == [(2, "0")]
    assert corpus.skipped == [("syn", 2, "0", "1",
                               "identical to held-out syn subject 1 session 0 run 0")]
    assert "identical to held-out syn subject 1" in caplog.text


def test_one_subject_in_memory_at_a_time_and_the_cache_is_reused(tmp_path):
    loader = _Loader()
    source = RawRecordings("syn", [1, 2, 3, 4], loader)
    dm = _module(source, tmp_path)
    dm.prepare_data()
    assert loader.calls == [1, 2, 3, 4]
    assert loader.max_alive_at_load == 0  # each subject's Raws were freed before the next load
    gc.collect()
    assert all(r() is None for r in loader.alive)  # the data module keeps no Raw
    dm.setup()
    assert len(dm.recordings) == 8
    ds = dm.train_set
    ds[0]
    assert isinstance(ds._signal(0), np.memmap)  # samples are read from memory-mapped files
    dm2 = _module(RawRecordings("syn", [1, 2, 3, 4], loader), tmp_path)
    dm2.setup()
    assert loader.calls == [1, 2, 3, 4]  # prepared subjects are not loaded again
    assert dm2.recordings == dm.recordings
    assert dm.minutes() == {"syn": pytest.approx(4 * (30 + 20) / 60)}
    # a prepared file deleted from the cache: that subject (only) is prepared again
    Path(dm.recordings[2].path).unlink()
    again = PretrainingCorpus([RawRecordings("syn", [1, 2, 3, 4], loader)], dm.spec,
                              tmp_path / "cache").prepare()
    assert loader.calls == [1, 2, 3, 4, 2]
    assert again == dm.recordings
    assert not list((tmp_path / "cache").rglob("*.tmp*"))
    assert total_minutes(dm.recordings, 128.0) == dm.minutes()


def test_batches_have_the_agreed_format_and_mask(tmp_path):
    loader = _Loader(montage=("Fp1", "T7", "C3", "O1", "PO3"))
    dm = _module(RawRecordings("syn", [1, 2], loader), tmp_path, batch_size=3)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"chunks", "channel_mask"}
    assert batch["chunks"].shape == (3, 8, 22, 128)
    assert batch["chunks"].dtype == torch.float32
    assert batch["channel_mask"].shape == (3, 22)
    assert batch["channel_mask"].dtype == torch.bool
    expected = np.zeros(22, bool)
    expected[[0, 8, 9, 19]] = True  # Fp1, T3 (= T7), C3, O1
    assert (batch["channel_mask"].numpy() == expected).all()
    assert not batch["chunks"][:, :, ~torch.from_numpy(expected)].any()
    assert batch["chunks"][:, :, torch.from_numpy(expected)].abs().sum(-1).min() > 0


# on a machine (or CPU affinity) with one core torch warns that 2 workers are more than it suggests
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_shuffling_is_deterministic_under_a_seed_and_workers_change_nothing(tmp_path):
    def batches(seed, num_workers=0, epochs=(0, 1)):
        dm = _module(RawRecordings("syn", [1, 2], _Loader()), tmp_path, seed=seed,
                     num_workers=num_workers)
        loader = dm.train_dataloader()
        out = []
        for epoch in epochs:
            loader.sampler.set_epoch(epoch)
            out.append(torch.cat([b["chunks"] for b in loader]))
        return out

    a0, a1 = batches(0)
    b0, b1 = batches(0)
    assert torch.equal(a0, b0)
    assert torch.equal(a1, b1)
    assert not torch.equal(a0, a1)  # a new epoch: new order and starts
    assert not torch.equal(batches(1)[0], a0)
    w0, w1 = batches(0, num_workers=2)
    assert torch.equal(w0, a0)
    assert torch.equal(w1, a1)


def test_moabb_dataset_source(tmp_path):
    from bci.data.datasets import SyntheticMotorImagery

    dataset = SyntheticMotorImagery(n_subjects=3, n_runs=2, n_trials=4, n_chans=8)
    source = MoabbRecordings(dataset, exclude_subjects=[3])
    assert source.name == "SyntheticMotorImagery"
    assert source.subjects == [1, 2]
    runs = source.load_subject(1)
    assert [(s, r) for s, r, _ in runs] == [("0", "0"), ("0", "1")]
    corpus = PretrainingCorpus([source], ChunkSpec(**SMALL), tmp_path)
    recs = corpus.prepare()
    assert len(recs) == 4
    # FC3, FCz, FC4, C3, Cz, C4, CP3, CP4: only C3, Cz, C4 are among the 22
    assert all(np.flatnonzero(r.mask).tolist() == [9, 10, 11] for r in recs)
    with pytest.raises(ValueError, match=r"exclude_subjects \[9\] not in SyntheticMotorImagery"):
        MoabbRecordings(dataset, exclude_subjects=[9])
    with pytest.raises(ValueError, match="No subject of SyntheticMotorImagery left"):
        MoabbRecordings(dataset, subjects=[1], exclude_subjects=[1])


def test_short_recordings_are_skipped_with_a_message(tmp_path, caplog):
    # 6.75 s: 864 samples at 128 Hz < one sample (912 samples); 5 s: shorter than the filter
    loader = _Loader(durations=(30.0, 6.75, 5.0))
    corpus = PretrainingCorpus([RawRecordings("syn", [1], loader)], ChunkSpec(**SMALL),
                               tmp_path)
    with caplog.at_level(logging.WARNING, logger="bci"):
        recs = corpus.prepare()
    assert [r.run for r in recs] == ["0"]
    assert corpus.skipped == [
        ("syn", 1, "0", "1", "864 samples at 128 Hz, shorter than one sample of 8 chunks "
                             "(912 samples)"),
        ("syn", 1, "0", "2", "5 s, shorter than the 6.60547-s band-pass filter (0.5-45 Hz)")]
    assert "Skipping syn subject 1 session 0 run 1" in caplog.text
    # a longer geometry reuses the cache and finds nothing long enough
    long = ChunkSpec(sfreq=128.0, chunk_s=4.0, overlap_s=0.0, n_chunks=8)
    with pytest.raises(ValueError, match=r"No recording is long enough for one pretraining "
                                         r"sample \(4096 samples = 32 s at 128 Hz\)"):
        PretrainingCorpus([RawRecordings("syn", [1], loader)], long, tmp_path).prepare()
    assert loader.calls == [1]


def test_data_module_bad_inputs(tmp_path):
    source = RawRecordings("syn", [1], _Loader())
    with pytest.raises(ValueError, match="sources is empty"):
        PretrainingDataModule([], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="offsets"):
        _module(source, tmp_path, offsets="shuffled")
    with pytest.raises(TypeError, match="A source needs name, subjects and load_subject"):
        PretrainingDataModule([object()], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="share a name"):
        PretrainingDataModule([source, source], cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"subjects \[5\] not in syn"):
        RawRecordings("syn", [1, 2], _Loader(), exclude_subjects=[5])
    with pytest.raises(ValueError, match="stride_s"):
        ChunkDataset([_ramp_recording(tmp_path, 1000)], ChunkSpec(**SMALL), stride_s=0.0)
    with pytest.raises(ValueError, match="shorter than one sample"):
        ChunkDataset([_ramp_recording(tmp_path, 100)], ChunkSpec(**SMALL))
    with pytest.raises(ValueError, match="has 3 channels, the spec 22"):
        ChunkDataset([_ramp_recording(tmp_path, 1000, n_chans=3)], ChunkSpec(**SMALL))


# lightning's own calls (lightning 2.6 with torch >= 2.10; 0 workers on purpose; tiny epochs)
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
@pytest.mark.filterwarnings("ignore:.*smaller than the logging interval:UserWarning")
def test_lightning_fit_sets_epochs_and_is_reproducible(tmp_path):
    import lightning.pytorch as pl

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple[int, torch.Tensor]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch["chunks"][:, 0, :, 0].clone()))
            return ((batch["chunks"].mean() - self.weight) ** 2).sum()

        def validation_step(self, batch, batch_idx):
            return batch["chunks"].mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit():
        dm = _module(RawRecordings("syn", [1, 2], _Loader()), tmp_path, seed=5,
                     val_fraction=0.25)
        probe = Probe()
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False)
        trainer.fit(probe, datamodule=dm)
        assert len(dm.train_set) == 10  # 30 s runs give 4 samples, 20 s runs 2; one run held
        assert len(dm.val_set) == 2
        return [torch.cat([x for e, x in probe.seen if e == epoch]) for epoch in (0, 1)]

    first = fit()
    assert first[0].shape == (10, 22)  # every training sample once an epoch, one per row
    assert not torch.equal(first[0], first[1])  # Lightning set the epoch: new starts
    again = fit()
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
