"""Writers of tiny CHB-MIT trees for tests: EDF files (with edfio) and PhysioNet-style summaries.

Shared by ``tests/data/test_chbmit.py`` and ``tests/recipes/test_seizure_spiking_conformer.py``;
callers skip when edfio is missing (``pytest.importorskip("edfio")``) before using them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SFREQ = 256  # Hz, as CHB-MIT
PHYS_UV = 1000.0  # EDF physical range +-1000 uV: quantisation step 2000 / 65535 uV


def seizure_signals(n_chans: int, duration_s: float, seizures: Sequence[tuple[float, float]],
                    seed: int, *, sfreq: float = SFREQ, noise_uv: float = 30.0,
                    rhythm_uv: float = 300.0, rhythm_hz: float = 3.0) -> np.ndarray:
    """Seeded Gaussian noise (uV) with a louder ``rhythm_hz`` sine during the seizures.

    Returns ``(n_chans, duration_s * sfreq)`` float64 in uV, clipped to the EDF range.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * sfreq))) / sfreq
    data = rng.normal(0.0, noise_uv, (n_chans, t.size))
    for onset, offset in seizures:
        inside = (t >= onset) & (t < offset)
        data[:, inside] += rhythm_uv * np.sin(2 * np.pi * rhythm_hz * t[inside])
    return np.clip(data, -PHYS_UV, PHYS_UV)


def write_edf(fname: Path, labels: Sequence[str], data_uv: np.ndarray, *,
              sfreq: float = SFREQ) -> None:
    """Write ``data_uv`` ``(n_chans, n_samples)`` (uV) as an EDF file with these labels."""
    import edfio

    signals = [edfio.EdfSignal(x, sfreq, label=label, physical_dimension="uV",
                               physical_range=(-PHYS_UV, PHYS_UV))
               for label, x in zip(labels, data_uv, strict=True)]
    edfio.Edf(signals, starttime=datetime.time(11, 42, 54)).write(fname)


def summary_text(files: Mapping[str, tuple[Sequence[str], float, Sequence[tuple]]], *,
                 sfreq: float = SFREQ) -> str:
    """Return a ``chbNN-summary.txt`` text in PhysioNet's format.

    ``files`` is ``{name: (labels, duration_s, seizures)}``; a ``Channels changed:`` block is
    written wherever the labels change.
    """
    lines = [f"Data Sampling Rate: {sfreq:g} Hz", "*************************", ""]
    previous = None
    for name, (labels, _, seizures) in files.items():
        if list(labels) != previous:
            lines += ["Channels in EDF Files:" if previous is None else "Channels changed:",
                      "**********************"]
            lines += [f"Channel {k}: {label}" for k, label in enumerate(labels, start=1)]
            lines.append("")
            previous = list(labels)
        lines += [f"File Name: {name}", f"Number of Seizures in File: {len(seizures)}"]
        for k, (onset, offset) in enumerate(seizures, start=1):
            lines += [f"Seizure {k} Start Time: {onset:g} seconds",
                      f"Seizure {k} End Time: {offset:g} seconds"]
        lines.append("")
    return "\n".join(lines)


def write_case(root: Path, case: str,
               files: Mapping[str, tuple[Sequence[str], float, Sequence[tuple]]], *,
               summary: str | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``root/case/``: one EDF file per entry of ``files``, and the summary.

    ``files`` is ``{name: (labels, duration_s, seizures)}``: seeded noise with louder rhythmic
    seizures; file ``k`` uses seed ``seed + k``. The summary is ``summary``, else
    :func:`summary_text`. Returns the data written (uV) by file name.
    """
    folder = Path(root) / case
    folder.mkdir(parents=True)
    written = {}
    for k, (name, (labels, duration_s, seizures)) in enumerate(files.items()):
        data = seizure_signals(len(labels), duration_s, seizures, seed + k)
        write_edf(folder / name, labels, data)
        written[name] = data
    text = summary_text(files) if summary is None else summary
    (folder / f"{case}-summary.txt").write_text(text)
    return written
