"""Auditory stimulation: a short tone or pink-noise burst on the sound card."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from .._checks import check_option, check_positive, check_real
from ..realtime.events import StimEvent
from ..realtime.stimulation import Stimulator


def make_tone(*, freq: float = 1000.0, duration_s: float = 0.05, sfreq: float = 44100.0,
              ramp_s: float = 0.005, volume: float = 0.5,
              kind: Literal["sine", "pink"] = "sine", random_state: int | None = 0
              ) -> np.ndarray:
    """Make a stimulus waveform: a sine tone or a pink-noise burst with cosine on/off ramps.

    Parameters
    ----------
    freq : float
        Tone frequency (Hz) for ``kind="sine"``.
    duration_s : float
        Length (s); Portiloop-style closed-loop auditory stimulation uses ~50 ms pink noise.
    sfreq : float
        Audio sampling rate (Hz).
    ramp_s : float
        Raised-cosine rise and fall (s), avoiding clicks.
    volume : float
        Peak amplitude in ``(0, 1]`` (full scale).
    kind : {"sine", "pink"}
        Waveform.
    random_state : int | None
        Seed of the pink noise.

    Returns
    -------
    wave : ndarray, shape (n_samples,), float32
    """
    volume = check_real(volume, "volume", low=0.0, high=1.0, low_inclusive=False,
                        unit="full scale")
    duration_s = check_positive(duration_s, "duration_s", unit="s")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    freq = check_positive(freq, "freq", unit="Hz")
    ramp_s = check_positive(ramp_s, "ramp_s", unit="s", allow_zero=True)
    check_option("kind", kind, ("sine", "pink"))
    if not freq < sfreq / 2:
        raise ValueError(f"Need 0 < freq < sfreq/2, got {freq} Hz at {sfreq} Hz.")
    n = max(int(round(duration_s * sfreq)), 2)
    if kind == "sine":
        wave = np.sin(2 * np.pi * freq * np.arange(n) / sfreq)
    else:  # "pink"
        rng = np.random.default_rng(random_state)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sfreq)
        spectrum[1:] /= np.sqrt(f[1:])  # 1/f power
        spectrum[0] = 0
        wave = np.fft.irfft(spectrum, n)
    wave = wave / np.max(np.abs(wave))
    n_ramp = min(int(round(ramp_s * sfreq)), n // 2)
    if n_ramp > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_ramp) / n_ramp)
        wave[:n_ramp] *= ramp
        wave[-n_ramp:] *= ramp[::-1]
    return (volume * wave).astype(np.float32)


class AudioToneStimulator(Stimulator):
    """Play a short tone for each stimulus (non-blocking).

    Parameters
    ----------
    freq, duration_s, volume, kind, ramp_s
        See :func:`make_tone`.
    sfreq : float
        Audio rate (Hz).
    device : int | str | None
        Sound device for :mod:`sounddevice`.
    play : callable | None
        ``play(wave, sfreq)`` that starts playback and returns at once; the default uses
        :func:`sounddevice.play` (``pip install sounddevice``; needs PortAudio).

    Attributes
    ----------
    wave : ndarray, shape (n_samples,), float32
        The waveform played.
    n_played : int
        Stimuli played so far.
    """

    name = "audio"

    def __init__(self, *, freq: float = 1000.0, duration_s: float = 0.05, volume: float = 0.5,
                 kind: Literal["sine", "pink"] = "sine", ramp_s: float = 0.005,
                 sfreq: float = 44100.0, device: int | str | None = None,
                 play: Callable[[np.ndarray, float], None] | None = None) -> None:
        self.wave = make_tone(freq=freq, duration_s=duration_s, sfreq=sfreq, ramp_s=ramp_s,
                              volume=volume, kind=kind)
        self.sfreq = float(sfreq)
        if play is None:
            try:
                import sounddevice
            except (ImportError, OSError) as err:
                raise ImportError(
                    "AudioToneStimulator plays through the sounddevice package, which is "
                    f"missing or cannot find PortAudio ({err}); `pip install sounddevice` "
                    "(and the system's libportaudio2), or pass play=..."
                ) from err

            def play(wave: np.ndarray, sfreq: float) -> None:
                sounddevice.play(wave, int(sfreq), device=device, blocking=False)

        self._play = play
        self.n_played = 0

    def trigger(self, event: StimEvent) -> None:
        """Start playing the waveform (returns at once)."""
        self._play(self.wave, self.sfreq)
        self.n_played += 1
