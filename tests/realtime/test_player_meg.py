"""`bci play` at MEG scale: the CTF recording (273 channels at 1,200 Hz, looped) over LSL."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from ._helpers import playing

pytest.importorskip("pylsl")

#: CTF whole-head recording of mne-testing-data (273 MEG axial gradiometers, typed ``mag``,
#: 28 reference sensors, 8 EEG, 3 stim; 2 s at 1,200 Hz), staged beside MNE_DATA
CTF = Path("meg_ieeg/mne-testing-data/CTF/testdata_ctf_short_discontinuous.ds_raw.fif")


def _ctf_file() -> Path:
    import mne

    root = Path(mne.get_config("MNE_DATA", str(Path.home() / "mne_data"))).expanduser().parent
    return root / CTF


@pytest.mark.real_data
def test_play_ctf_meg_loops_without_losing_a_sample():
    """3 s of the 2-s file, played looped: every sample arrives, in order, bit for bit."""
    import mne

    from bci.realtime.lsl import LSLSource

    fif = _ctf_file()
    if not fif.is_file():
        pytest.skip(f"the CTF MEG test recording is not staged at {fif} (mne-testing-data)")
    raw = mne.io.read_raw_fif(fif, preload=True, verbose=False).pick("mag")
    truth = raw.get_data().astype(np.float32)  # what the player pushes
    assert truth.shape == (273, 2402)
    n_want = 3 * 1200  # one and a half loops
    name = f"bci-meg-{os.getpid()}"
    chunks, stamps = [], []
    with playing(fif, name, "--picks", "mag", "--loop", "--duration-s", "60", "--wait-s", "30",
                 "--type", "MEG"):
        source = LSLSource(name, timeout_s=30.0, dejitter=False)
        try:
            assert source.info.sfreq == 1200.0
            assert source.info.ch_names == raw.ch_names
            deadline = time.monotonic() + 30.0
            n = 0
            while n < n_want and time.monotonic() < deadline:
                data, ts = source.pull()
                if len(ts):
                    chunks.append(data)
                    stamps.append(ts)
                    n += len(ts)
                else:
                    time.sleep(0.005)  # polling for data, not synchronising
        finally:
            source.close()
    data, ts = np.concatenate(chunks, axis=1), np.concatenate(stamps)
    assert data.shape[1] >= n_want, f"{data.shape[1]} of {n_want} samples in 30 s"
    # the player waits for this inlet, so the stream starts at the file's first sample;
    # sample i is sample i % 2402 of the file: none lost, none duplicated, none reordered
    idx = np.arange(data.shape[1]) % truth.shape[1]
    np.testing.assert_array_equal(data.astype(np.float32), truth[:, idx])
    # one timestamp every 1/1200 s (the player stamps each chunk's last sample)
    np.testing.assert_allclose(np.diff(ts), 1 / 1200, atol=2e-4)
