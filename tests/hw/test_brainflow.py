"""BrainFlow acquisition on BrainFlow's synthetic board (no hardware), over loopback LSL."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

from bci.cli import main
from bci.realtime.sources import SourceLostError
from bci.realtime.stream import Stream

pytest.importorskip("brainflow")
pylsl = pytest.importorskip("pylsl")

from bci.hw.brainflow import (  # noqa: E402 (after the skips)
    UV_TO_V,
    BoardPublisher,
    BrainFlowSource,
    board_names,
    import_board_shim,
    resolve_board,
)

SYNTHETIC = -1
SFREQ = 250.0


def _name(tag: str) -> str:
    return f"bci-test-bf-{tag}-{os.getpid()}"


def _descr():
    return import_board_shim().BoardShim.get_board_descr(SYNTHETIC)


class TeeBoard:
    """The synthetic BoardShim, keeping a copy of every row block it hands out (the truth).

    ``frozen``: deliver nothing (the board stops delivering; its samples stay in BrainFlow's
    buffer). ``fail_prepare``: opening again fails (the board does not come back).
    """

    def __init__(self) -> None:
        bf = import_board_shim()
        self.inner = bf.BoardShim(SYNTHETIC, bf.BrainFlowInputParams())
        self.blocks: list[np.ndarray] = []
        self.frozen = False
        self.fail_prepare = False
        self.shift_s = 0.0  # added to BrainFlow's timestamps: the wall clock stepped (NTP)
        self.cap: int | None = None  # at most this many samples seem buffered
        self.n_prepared = 0

    def prepare_session(self) -> None:
        if self.fail_prepare:
            bf = import_board_shim()
            raise bf.BrainFlowError("unable to prepare streaming session",
                                    bf.BrainFlowExitCodes.UNABLE_TO_OPEN_PORT_ERROR.value)
        self.inner.prepare_session()
        self.n_prepared += 1

    def get_board_data_count(self) -> int:
        count = 0 if self.frozen else self.inner.get_board_data_count()
        return count if self.cap is None else min(count, self.cap)

    def get_board_data(self, num_samples=None):
        data = self.inner.get_board_data(num_samples)
        data[_descr()["timestamp_channel"]] += self.shift_s
        self.blocks.append(data.copy())
        return data

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)  # start_stream, stop_stream, release_session, insert_marker
        return getattr(self.inner, name)

    @property
    def truth(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=1)


@pytest.fixture
def tee():
    board = TeeBoard()
    yield board
    board.inner = None  # BrainFlow's BoardShim.__del__ must run now, not at interpreter exit


def _wait_for(predicate, timeout_s: float, poll_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(poll_s)  # polling with a timeout, not synchronisation
    return True


# ------------------------------------------------------------------ names and bad input
def test_board_names_are_brainflows():
    names = board_names()
    bf = import_board_shim()
    assert len(names) == len(bf.BoardIds) - 1  # all but NO_BOARD
    assert {"synthetic", "cyton", "cyton_daisy", "ganglion", "muse_2", "playback_file"} <= \
        set(names)
    assert resolve_board("synthetic") == ("synthetic", SYNTHETIC)
    assert resolve_board("Cyton-Daisy") == ("cyton_daisy", bf.BoardIds.CYTON_DAISY_BOARD.value)
    assert resolve_board("CYTON_BOARD") == ("cyton", bf.BoardIds.CYTON_BOARD.value)
    assert resolve_board(SYNTHETIC) == ("synthetic", SYNTHETIC)


def test_unknown_board_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Did you mean 'cyton_daisy'\?.*synthetic"):
        resolve_board("cyton_dasy")
    with pytest.raises(ValueError, match="Unknown BrainFlow board id 999"):
        resolve_board(999)
    with pytest.raises(TypeError, match="board must be"):
        resolve_board(1.5)


def test_missing_serial_port_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"/dev/ttyNOPE does not exist .*--serial-port"):
        BrainFlowSource("cyton", serial_port="/dev/ttyNOPE")


def test_brainflow_error_is_translated():
    # a serial board without its port: BrainFlow's INVALID_ARGUMENTS_ERROR, explained
    with pytest.raises(RuntimeError, match=r"'cyton'.*serial boards need --serial-port.*"
                                           r"INVALID_ARGUMENTS_ERROR"):
        BrainFlowSource("cyton")


def test_bad_board_params():
    with pytest.raises(ValueError, match=r"Unknown board parameter 'ip_prt'. Did you mean "
                                         r"'ip_port'\?"):
        BrainFlowSource("synthetic", params={"ip_prt": 1})
    with pytest.raises(TypeError, match="board parameter ip_port"):
        BrainFlowSource("synthetic", params={"ip_port": "x"})
    with pytest.raises(ValueError, match="serial port is given twice"):
        BrainFlowSource("synthetic", serial_port="/dev/null", params={"serial_port": "a"})


def test_cli_bad_board_input(capsys):
    assert main(["acquire", "--board", "cyton_dasy", "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'cyton_daisy'?" in err
    assert "synthetic" in err
    assert main(["acquire", "--board", "cyton", "--serial-port", "/dev/ttyNOPE",
                 "--name", "x"]) == 2
    assert "/dev/ttyNOPE does not exist" in capsys.readouterr().err
    assert main(["stream", "--board", "synthetic", "--source", "x"]) == 2
    assert "not both" in capsys.readouterr().err


# ------------------------------------------------------------------ the source
def test_source_metadata_volts_and_lsl_clock(tee):
    descr = _descr()
    with BrainFlowSource("synthetic", board_shim=tee, dejitter=False) as source:
        bf = import_board_shim()
        assert source.info.ch_names == bf.BoardShim.get_eeg_names(SYNTHETIC)
        assert source.info.sfreq == SFREQ == descr["sampling_rate"]
        assert source.accel_names == ["accel_x", "accel_y", "accel_z"]
        pulled, stamps = [], []
        assert _wait_for(lambda: (pulled.append(source.pull()) or
                                  sum(d.shape[1] for d, _ in pulled) >= 250), 10.0)
        now = source.now()
        data = np.concatenate([d for d, _ in pulled], axis=1)
        stamps = np.concatenate([t for _, t in pulled])
    truth = tee.truth
    # every sample, once, in order (BrainFlow's package counter), values in volts exactly
    assert data.shape == (16, truth.shape[1])
    np.testing.assert_array_equal(np.diff(truth[descr["package_num_channel"]]) % 256, 1)
    np.testing.assert_array_equal(data, truth[descr["eeg_channels"]] * UV_TO_V)
    assert np.abs(data).max() < 1e-2  # volts, not microvolts
    # timestamps: BrainFlow's wall-clock stamps moved onto the LSL clock by one offset
    np.testing.assert_allclose(stamps - truth[descr["timestamp_channel"]], source.offset_s,
                               atol=1e-6)
    assert now - 1.0 < stamps[-1] <= now  # stamped when read, on the clock of now()
    np.testing.assert_allclose(np.median(np.diff(stamps)), 1 / SFREQ, rtol=0.05)


def test_source_dejitters_without_smearing(tee):
    with BrainFlowSource("synthetic", board_shim=tee) as source:
        chunks = []
        assert _wait_for(lambda: (chunks.append(source.pull()[1]) or
                                  sum(c.size for c in chunks) >= 250), 10.0)
    ts = np.concatenate(chunks)
    raw = tee.truth[_descr()["timestamp_channel"]] + source.offset_s
    assert np.abs(ts - raw).max() <= source.max_jitter_s  # no step: within the jitter
    assert np.std(np.diff(ts)) < np.std(np.diff(raw))  # the jitter smoothed


def test_first_samples_wait_for_the_warmup_and_are_not_lost(tee):
    """After a start the dejitterer's line rests on warmup_s of samples, none dropped."""
    source = BrainFlowSource("synthetic", board_shim=tee, warmup_s=0.2, no_data_timeout_s=0.3)
    try:
        tee.cap = 10  # 10 samples buffered, fewer than 0.2 s (50)
        assert _wait_for(lambda: tee.inner.get_board_data_count() >= 10, 5.0)
        assert source.pull()[1].size == 0  # held back
        # a board stuck below the warm-up is lost all the same
        with pytest.raises(SourceLostError, match="delivered no sample for"):
            _wait_for(lambda: source.pull()[1].size > 0, 5.0)
        tee.cap = None
        assert source.reconnect() == source.info
        assert _wait_for(lambda: tee.inner.get_board_data_count() >= 50, 5.0)
        data, ts = source.pull()
        assert ts.size >= 50  # everything buffered, from the first sample after the restart
        np.testing.assert_array_equal(np.diff(tee.truth[_descr()["package_num_channel"]]), 1)
    finally:
        source.close()


def test_samples_published_equal_samples_read_over_lsl(tee):
    """Board -> bci acquire's publisher -> LSL -> LSLSource: every sample, exact, in volts."""
    from bci.realtime.lsl import LSLSource, MarkerInlet

    name = _name("pub")
    # dejitter=False: each sample's timestamp is BrainFlow's own, checked below exactly
    source = BrainFlowSource("synthetic", board_shim=tee, name=name, no_data_timeout_s=60.0,
                             dejitter=False)
    publisher = BoardPublisher(source, name, wait_for_consumers_s=10.0).start()
    try:
        assert sorted(publisher.stream_names) == sorted([name, f"{name}-accel",
                                                         f"{name}-markers"])
        # the EEG inlet last: the publisher starts when the EEG stream has a consumer
        markers = MarkerInlet(f"{name}-markers", timeout_s=10.0)
        accel = LSLSource(f"{name}-accel", timeout_s=10.0, dejitter=False)
        inlet = LSLSource(name, timeout_s=10.0, dejitter=False)
        info = pylsl.resolve_byprop("name", name, timeout=5.0)[0]
        meta = pylsl.StreamInlet(info).info(timeout=5.0)
        assert _wait_for(lambda: publisher.n_pushed >= 250, 10.0)
        source.board.insert_marker(3.0)
        assert _wait_for(lambda: publisher.n_markers == 1, 5.0)
        tee.frozen = True  # the board stops delivering: n_pushed is final once the read in
        # flight, if any, is pushed
        assert _wait_for(lambda: publisher.n_pushed == sum(b.shape[1] for b in tee.blocks),
                         5.0)
        n_final = publisher.n_pushed
        got, got_ts, got_acc, got_markers = [], [], [], []

        def drained() -> bool:
            d, t = inlet.pull()
            got.append(d)
            got_ts.append(t)
            got_acc.append(accel.pull()[0])
            got_markers.append(markers.pull())
            return sum(x.shape[1] for x in got) >= n_final and \
                sum(x.shape[1] for x in got_acc) >= n_final and \
                sum(len(m) for m, _ in got_markers) >= 1

        assert _wait_for(drained, 10.0)
    finally:
        publisher.stop()
    descr = _descr()
    truth = tee.truth
    assert truth.shape[1] == n_final  # published everything the board delivered
    data = np.concatenate(got, axis=1)
    assert data.shape == (16, n_final)  # read everything published, nothing more
    np.testing.assert_array_equal(
        data, (truth[descr["eeg_channels"]] * UV_TO_V).astype(np.float32))
    np.testing.assert_array_equal(np.concatenate(got_acc, axis=1),
                                  truth[descr["accel_channels"]].astype(np.float32))
    # each sample's own timestamp: BrainFlow's stamp moved onto the LSL clock (the inlet's
    # clock synchronisation adds its estimate of the offset between the two ends: ~10 us)
    ts = np.concatenate(got_ts)
    raw_ts = truth[descr["timestamp_channel"]] + source.offset_s
    np.testing.assert_allclose(ts, raw_ts, rtol=0, atol=1e-3)
    assert np.median(np.diff(ts)) == pytest.approx(1 / SFREQ, rel=0.01)
    # the marker: value as text, at its sample's time
    labels = [m for ms, _ in got_markers for m in ms]
    stamps = np.concatenate([t for _, t in got_markers])
    k = int(np.flatnonzero(truth[descr["marker_channel"]])[0])
    assert labels == ["3"]
    assert stamps[0] == pytest.approx(ts[k], abs=1e-3)  # two inlets: each its clock sync
    # metadata of the EEG stream
    assert meta.type() == "EEG"
    assert meta.nominal_srate() == SFREQ
    ch = meta.desc().child("channels").child("channel")
    labels, units, types = [], [], []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        units.append(ch.child_value("unit"))
        types.append(ch.child_value("type"))
        ch = ch.next_sibling()
    assert labels == import_board_shim().BoardShim.get_eeg_names(SYNTHETIC)
    assert set(units) == {"volts"}
    assert set(types) == {"EEG"}


# ------------------------------------------------------------------ a board that stops
def test_stalled_board_is_reported_and_reconnected():
    """The board's stream is stopped (as when unplugged): stall, lost, reconnected, data again."""
    source = BrainFlowSource("synthetic", no_data_timeout_s=0.5)
    seen: dict[str, float] = {}
    back = threading.Event()

    def on_event(event) -> None:
        seen.setdefault(event.kind, time.monotonic())
        if event.kind == "reconnected":
            back.set()

    with Stream(source, stall_s=0.25, reconnect_s=5.0) as stream:
        stream.add_event_listener(on_event)
        assert _wait_for(lambda: stream.n_written >= 100, 10.0)
        source.board.stop_stream()  # BrainFlow delivers nothing from now on
        assert back.wait(10.0)
        n_back = stream.n_written
        assert _wait_for(lambda: stream.n_written >= n_back + 100, 10.0)  # data again
        stream.check()
    kinds = [e.kind for e in stream.events]
    assert kinds.index("stall") < kinds.index("lost") < kinds.index("reconnected")
    assert source.n_reconnects == 1
    lost = next(e for e in stream.events if e.kind == "lost")
    quiet_s = float(lost.detail["error"].split("delivered no sample for ")[1].split(" s")[0])
    assert quiet_s >= 0.5  # no_data_timeout_s after the last sample
    assert seen["stall"] <= seen["lost"]
    assert seen["reconnected"] - seen["lost"] < 2.0  # measured: ~0.01 s
    # the outage is reported as lost samples (at least no_data_timeout_s of them)
    # (a late burst of the synthetic board's stamps on a loaded machine may add a small one)
    gaps = [e for e in stream.events if e.kind == "gap" and e.detail["n_lost"] >= 0.45 * SFREQ]
    assert len(gaps) == 1
    source.close()


def test_wall_clock_step_is_a_clock_jump_not_lost_samples(tee):
    """BrainFlow stamps on the wall clock: NTP stepping it by 2 s loses no sample."""
    source = BrainFlowSource("synthetic", board_shim=tee)
    with Stream(source) as stream:
        assert _wait_for(lambda: stream.n_written >= 100, 10.0)
        tee.shift_s = 2.0
        assert _wait_for(lambda: any(e.kind == "clock_jump" for e in stream.events), 10.0)
        n = stream.n_written
        assert _wait_for(lambda: stream.n_written >= n + 50, 10.0)
    # one 2-s jump, nothing lost (on a loaded machine the synthetic board's own stamps may
    # come up to ~80 ms late, rarely: a small gap and jump of their own, told apart by size)
    jumps = [e for e in stream.events if e.kind == "clock_jump" and e.detail["jump_s"] > 1]
    assert len(jumps) == 1
    assert jumps[0].detail["jump_s"] == pytest.approx(2.0, abs=0.06)  # within max_jitter_s
    assert all(e.detail["n_lost"] < 0.1 * SFREQ for e in stream.events if e.kind == "gap")


def test_board_that_does_not_come_back_stops_cleanly(tee):
    source = BrainFlowSource("synthetic", board_shim=tee, no_data_timeout_s=0.3)
    stream = Stream(source, stall_s=0.1, reconnect_s=0.5).start()
    try:
        assert _wait_for(lambda: stream.n_written >= 50, 10.0)
        tee.fail_prepare = True
        tee.frozen = True
        assert _wait_for(lambda: not stream.running, 10.0)
        kept = stream.n_written
        with pytest.raises(RuntimeError, match=r"stopped: .*did not come back within "
                                               r"reconnect_s=0.5 s .*UNABLE_TO_OPEN_PORT_ERROR"
                                               r".*everything received so far is kept"):
            stream.check()
    finally:
        stream.stop()
    assert kept >= 50
    assert tee.n_prepared == 1


def test_publisher_reconnects_a_stalled_board():
    name = _name("reco")
    source = BrainFlowSource("synthetic", no_data_timeout_s=0.3, name=name)
    with BoardPublisher(source, name, reconnect_s=5.0) as publisher:
        assert _wait_for(lambda: publisher.n_pushed >= 50, 10.0)
        source.board.stop_stream()
        assert _wait_for(lambda: publisher.n_reconnects == 1, 10.0)
        n = publisher.n_pushed
        assert _wait_for(lambda: publisher.n_pushed >= n + 50, 10.0)


# ------------------------------------------------------------------ the commands
def test_cli_acquire_publishes_the_board(capsys):
    """README: `bci acquire --board synthetic --name eeg --wait-s 10 --duration-s 600`."""
    from bci.realtime.lsl import LSLSource

    name = _name("cli")
    result: dict[str, int] = {}
    cli = threading.Thread(target=lambda: result.setdefault("rc", main(
        ["acquire", "--board", "synthetic", "--name", name, "--wait-s", "10",
         "--duration-s", "1", "--board-param", "mac_address=00:55:DA:B0:0C:4F"])))
    t0 = time.monotonic()
    cli.start()
    try:
        inlet = LSLSource(name, timeout_s=10.0)
        assert inlet.info.ch_names == import_board_shim().BoardShim.get_eeg_names(SYNTHETIC)
        assert inlet.info.sfreq == SFREQ
    finally:
        cli.join(30.0)
    elapsed_s = time.monotonic() - t0
    out, err = capsys.readouterr()
    assert result["rc"] == 0, err
    assert f"as LSL {name}, {name}-accel, {name}-markers: 16 EEG channels (Fz, C3" in out
    n_pushed = int(out.split("Published ")[1].split(" samples")[0])
    # 1 s at 250 Hz after the consumer connected, plus what waited for it in BrainFlow
    assert 0.8 * SFREQ <= n_pushed <= elapsed_s * SFREQ + 25


def test_cli_stream_reads_a_board(tmp_path, capsys):
    """README: `bci stream --board synthetic --window-s 0.5 --duration-s 60 --record DIR`."""
    from bci.realtime.recording import read_signal

    record = tmp_path / "session"
    rc = main(["stream", "--board", "synthetic", "--window-s", "0.5", "--duration-s", "1",
               "--record", str(record)])
    assert rc == 0
    assert "Streaming 'brainflow-synthetic': 16 channels at 250 Hz" in capsys.readouterr().out
    data, ts, header = read_signal(record)
    assert header["ch_names"] == import_board_shim().BoardShim.get_eeg_names(SYNTHETIC)
    assert header["sfreq"] == SFREQ
    assert 150 <= data.shape[1] <= 400
    assert np.abs(data).max() < 1e-2  # volts
    # board -> session -> a standard file: the same samples, BrainFlow's names
    import mne

    out = tmp_path / "board_raw.fif"
    assert main(["session-export", str(record), "--format", "fif", "--out", str(out)]) == 0
    raw = mne.io.read_raw_fif(out, verbose=False)
    assert raw.ch_names == header["ch_names"]
    np.testing.assert_array_equal(raw.get_data(), data)


def test_missing_brainflow_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "brainflow.board_shim", None)
    with pytest.raises(ImportError, match=r"pip install 'bci\[brainflow\]'"):
        BrainFlowSource("synthetic")
    assert main(["acquire", "--board", "synthetic", "--name", "x"]) == 2
