"""make_meg_trials: real evoked templates + real Elekta noise, rank-deficient like real data."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ._bids_files import ELEKTA, EVOKED

pytestmark = pytest.mark.skipif(not (EVOKED.is_file() and ELEKTA.is_file()),
                                reason=f"staged MEG files absent: {EVOKED}, {ELEKTA}")


def test_trials_counts_rank_and_planted_templates():
    import mne

    from bci.data.meg import CONDITIONS, make_meg_trials
    from bci.features.rank import estimate_rank

    raw = make_meg_trials(EVOKED, ELEKTA, n_trials=3, snr=1.0, random_state=0)
    assert set(raw.get_channel_types()) == {"grad", "mag"}
    assert len(raw.ch_names) == 306
    assert Counter(raw.annotations.description) == dict.fromkeys(CONDITIONS.values(), 3)
    # three SSP projectors on the magnetometers: rank 303, as MNE computes it
    assert mne.compute_rank(raw, verbose=False)["meg"] == 303
    assert estimate_rank(raw.get_data(picks="mag")[None] * 1e15) == 99
    # noise only vs noise + templates, same seed: the difference is the planted template
    noise = make_meg_trials(EVOKED, ELEKTA, n_trials=3, snr=0.0, random_state=0)
    diff = raw.get_data() - noise.get_data()
    onset = raw.time_as_index(raw.annotations.onset[0])[0]
    assert np.abs(diff[:, :onset - 40]).max() == 0.0  # nothing before the first window
    with pytest.raises(ValueError, match="snr must be"):
        make_meg_trials(EVOKED, ELEKTA, snr=-1.0)
