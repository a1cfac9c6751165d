"""MNE's ``sample`` dataset (auditory vs visual evoked responses) as a MOABB dataset.

The classic MNE decoding example: one subject, 306 MEG (Elekta Neuromag) + 60 EEG channels,
left/right auditory tones and left/right visual checkerboards (trigger channel ``STI 014``:
1, 2 auditory; 3, 4 visual; 5 smiley, 32 button press, not used). :class:`MNESample` reads the
40-Hz low-passed recording ``MNE-sample-data/MEG/sample/sample_audvis_filt-0-40_raw.fif`` and
gives two classes, ``auditory`` and ``visual`` (0-0.5 s after the stimulus).

Location, as MNE resolves it (:mod:`bci._config`): ``MNE_DATASETS_SAMPLE_PATH`` (the folder
holding ``MNE-sample-data``), else ``MNE_DATA``, else ``~/mne_data``. With ``download=True``
(the default) a missing copy is fetched by :func:`mne.datasets.sample.data_path` (1.5 GB, needs
internet); with ``download=False`` it raises :class:`FileNotFoundError` naming the file and the
variable to set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from moabb.datasets.base import BaseDataset

from .._checks import check_bool
from .._config import config_help, dataset_path
from .channel_types import unit_factor_for

logger = logging.getLogger(__name__)

__all__ = ["MNESample", "SAMPLE_FILE"]

#: The recording read, relative to the folder holding ``MNE-sample-data``.
SAMPLE_FILE = Path("MNE-sample-data", "MEG", "sample", "sample_audvis_filt-0-40_raw.fif")
#: Trigger codes of each class on ``STI 014``.
_CODES = {"auditory": (1, 2), "visual": (3, 4)}


class MNESample(BaseDataset):
    """MNE's sample recording: auditory vs visual stimuli (MOABB dataset, one subject).

    Parameters
    ----------
    ch_types : list of str
        Channel types to pick (see :mod:`bci.data.channel_types`): ``["grad"]`` (default,
        204 gradiometers, fT/cm), ``["mag"]``, ``["mag", "grad"]`` or ``["eeg"]``.
    path : str | os.PathLike | None
        Folder holding ``MNE-sample-data``; None: ``MNE_DATASETS_SAMPLE_PATH``, ``MNE_DATA``,
        ``~/mne_data``.
    download : bool
        Fetch a missing copy with :func:`mne.datasets.sample.data_path` (internet).
    """

    def __init__(self, ch_types=("grad",), path: str | os.PathLike | None = None,
                 download: bool = True) -> None:
        from .bids import _check_ch_types, pick_kwargs

        self.ch_types = _check_ch_types(list(ch_types) if not isinstance(ch_types, str)
                                        else ch_types)
        self.path = path
        self.download = check_bool(download, "download")
        super().__init__(subjects=[1], sessions_per_subject=1,
                         events={"auditory": 1, "visual": 2}, code="MNESample",
                         interval=[0.0, 0.5], paradigm="imagery", doi="10.3389/fnins.2013.00267",
                         return_all_modalities=pick_kwargs(self.ch_types),
                         unit_factor=unit_factor_for(self.ch_types))

    def data_path(self, subject, path=None, force_update=False, update_path=None,
                  verbose=None) -> list[str]:
        """Return the recording's file, downloading it if allowed and missing.

        Parameters
        ----------
        subject : int
            Only 1.
        path, force_update, update_path, verbose
            ``path`` overrides the dataset's; the rest is MOABB's signature (ignored).

        Returns
        -------
        paths : list of str
        """
        if subject != 1:
            raise ValueError(f"subject must be 1 (MNESample has one subject), got {subject!r}.")
        base = dataset_path("SAMPLE", None, path if path is not None else self.path)
        fname = base / SAMPLE_FILE
        if not fname.is_file():
            if not self.download:
                raise FileNotFoundError(
                    f"MNE's sample recording is not at {fname}. Download it with "
                    "mne.datasets.sample.data_path() (or MNESample(download=True)), or "
                    f"{config_help('SAMPLE')} to the folder holding MNE-sample-data."
                )
            import mne

            logger.info("Downloading MNE's sample dataset into %s", base)
            base = Path(mne.datasets.sample.data_path(path=base, download=True)).parent
            fname = base / SAMPLE_FILE
        return [str(fname)]

    def _get_single_subject_data(self, subject):
        import mne
        import numpy as np

        (fname,) = self.data_path(subject)
        raw = mne.io.read_raw_fif(fname, preload=True, verbose="error")
        events = mne.find_events(raw, stim_channel="STI 014", shortest_event=1, verbose=False)
        onsets, labels = [], []
        for label, codes in _CODES.items():
            sel = events[np.isin(events[:, 2], codes)]
            onsets.extend((sel[:, 0] - raw.first_samp) / raw.info["sfreq"])
            labels.extend([label] * len(sel))
        order = np.argsort(onsets, kind="stable")
        raw.set_annotations(mne.Annotations(np.asarray(onsets)[order], 0.0,
                                            np.asarray(labels)[order],
                                            orig_time=raw.info["meas_date"]))
        raw.drop_channels([c for c, t in zip(raw.ch_names, raw.get_channel_types(), strict=True)
                           if t == "stim"])
        return {"0": {"0": raw}}
