"""`run_session` and `Player`: every timing parameter finite and in range, checked up front."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.player import Player, play
from bci.realtime.session import run_session
from bci.realtime.sources import ArraySource

BAD = [float("nan"), float("inf"), float("-inf"), -1.0]


class ClosingSource(ArraySource):
    """Remembers that the session closed it (a refused start must release the source)."""

    closed = False

    def close(self):
        self.closed = True


@pytest.mark.parametrize("value", [*BAD, 0.0])
@pytest.mark.parametrize("param", ["duration_s", "step_s", "window_s", "decode_timeout_s",
                                   "buffer_s"])
def test_run_session_refuses_bad_durations_and_releases_the_source(tmp_path, param, value):
    source = ClosingSource(np.zeros((2, 100)), 100.0)
    kwargs = {"window_s": 0.5, "threaded": False, "record_dir": tmp_path / "s", param: value}
    with pytest.raises(ValueError, match=rf"{param} must be a finite number > 0 \(s\), "
                                         rf"got {value}"):
        run_session(source, **kwargs)
    assert source.closed
    assert not (tmp_path / "s" / "signal.f32").exists()  # nothing recorded for a bad start


@pytest.mark.parametrize("value", BAD)
def test_run_session_refuses_bad_reconnect_time(value):
    with pytest.raises(ValueError, match=r"reconnect_s must be a finite number >= 0 \(s\)"):
        run_session(ArraySource(np.zeros((1, 10)), 10.0), window_s=0.5, reconnect_s=value)


def test_run_session_refuses_an_unknown_target_before_recording(tmp_path):
    class Decoder:
        ch_names, sfreq, n_times, tmin, tmax = ["a", "b"], 100.0, 50, 0.0, 0.49
        classes = ["13", "17", "21", "rest"]

        def predict_proba(self, X):
            return np.full((len(X), 4), 0.25)

    source = ClosingSource(np.zeros((2, 500)), 100.0, ch_names=["a", "b"])
    with pytest.raises(ValueError, match=r"target class '-1' is not one of the decoder classes "
                                         r"\['13', '17', '21', 'rest'\]"):
        run_session(source, decoder=Decoder(), policy="threshold:target=-1",
                    record_dir=tmp_path / "s", threaded=False)
    assert source.closed
    assert not (tmp_path / "s" / "signal.f32").exists()
    summary = run_session(ClosingSource(np.zeros((2, 500)), 100.0, ch_names=["a", "b"]),
                          decoder=Decoder(), policy="threshold:target=13,on=0.2,off=0.2",
                          record_dir=tmp_path / "s", threaded=False)
    # windows end at samples 49, 59, ... 499: 46, decided or (replayed faster than real time,
    # without catch_up) skipped
    assert summary["decisions"] + summary["windows_skipped"] == 46
    assert summary["stimuli_fired"] == 1  # p(13) = 0.25 >= 0.2 once, never re-armed
    assert summary["summary_written"] is True


@pytest.mark.parametrize("value", [*BAD, 0.0])
def test_player_refuses_bad_timing(value):
    data = (np.zeros((1, 10)), 10.0, ["a"])
    with pytest.raises(ValueError, match=rf"chunk_s must be a finite number > 0 \(s\), "
                                         rf"got {value}"):
        Player(data, "x", chunk_s=value)
    if value != 0.0:
        with pytest.raises(ValueError, match=r"wait_for_consumers_s must be a finite number "
                                             r">= 0 \(s\)"):
            Player(data, "x", wait_for_consumers_s=value)
    with pytest.raises(ValueError, match=rf"duration_s must be a finite number > 0 \(s\), "
                                         rf"got {value}"):
        play("never-read.fif", "x", duration_s=value)
