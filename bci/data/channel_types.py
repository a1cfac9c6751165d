"""Channel types (``mag``, ``grad``, ``eeg``, ``seeg``, ``ecog``, ``dbs``) and their scaling.

Recordings are in SI units, and the types differ by orders of magnitude: scalp EEG and
intracranial contacts in volts (tens of µV, i.e. ~1e-5 V), MEG magnetometers in tesla
(hundreds of fT, ~1e-13 T) and planar gradiometers in tesla per metre (~1e-12 to 1e-11 T/m).
MOABB hands pipelines ``volts * dataset.unit_factor`` (1e6: µV). ``bci`` scales each family to the
unit MNE displays it in, so that every pipeline sees numbers of the same order (tens to
hundreds), whatever the sensor:

====== ============ =========== ==========================
type   SI unit      scaling     unit the pipelines see
====== ============ =========== ==========================
eeg    V            1e6         µV
seeg   V            1e6         µV
ecog   V            1e6         µV
dbs    V            1e6         µV
mag    T            1e15        fT
grad   T/m          1e13        fT/cm
====== ============ =========== ==========================

MOABB's scaling is one number a dataset (``unit_factor``), so a dataset picks channels of one
scaling family: volts (any of eeg, seeg, ecog, dbs), magnetometers, gradiometers, or both MEG
types, which share the gradiometers' 1e13 (magnetometers then read in units of 10 fT, within a
factor of about 10 of the gradiometers in fT/cm; the covariance pipelines' shrinkage and the
rank handling of :mod:`bci.features.rank` cope with that). Volts and tesla together are refused.
The decoder's live checks (:mod:`bci.models.decoder` amplitude range) compare the stream, times
this same factor, with the training amplitudes, so they stay correct per type.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CH_TYPES", "SCALINGS", "UNITS", "check_stream_types", "unit_factor_for"]

#: Channel types a decoder can be trained on.
CH_TYPES = ("mag", "grad", "eeg", "seeg", "ecog", "dbs")
#: Factor from the SI unit of each type to the unit pipelines see.
SCALINGS = {"eeg": 1e6, "seeg": 1e6, "ecog": 1e6, "dbs": 1e6, "mag": 1e15, "grad": 1e13}
#: Unit pipelines see, per type (after :data:`SCALINGS`).
UNITS = {"eeg": "µV", "seeg": "µV", "ecog": "µV", "dbs": "µV", "mag": "fT", "grad": "fT/cm"}
_VOLTS = {"eeg", "seeg", "ecog", "dbs"}
_MEG = {"mag", "grad"}


def unit_factor_for(ch_types: Sequence[str]) -> float:
    """MOABB ``unit_factor`` (one number) for channels of the types ``ch_types``.

    Parameters
    ----------
    ch_types : sequence of str
        Channel types among :data:`CH_TYPES`.

    Returns
    -------
    unit_factor : float
        1e6 for volt types, 1e15 for magnetometers alone, 1e13 for gradiometers (alone or
        with magnetometers).

    Raises
    ------
    ValueError
        An unknown type, or volts and tesla mixed.

    Examples
    --------
    >>> unit_factor_for(["grad"])
    10000000000000.0
    >>> unit_factor_for(["seeg", "ecog"])
    1000000.0
    """
    from .._checks import check_option

    types = set()
    for ch_type in ch_types:
        check_option("channel type", ch_type, CH_TYPES)
        types.add(ch_type)
    if not types:
        raise ValueError(f"Name at least one channel type among {list(CH_TYPES)}, got none.")
    if types & _VOLTS and types & _MEG:
        raise ValueError(
            f"Channel types {sorted(types)} mix volts ({', '.join(sorted(types & _VOLTS))}) and "
            f"tesla ({', '.join(sorted(types & _MEG))}), which differ by 7 to 9 orders of "
            "magnitude and cannot share one scaling: decode them separately, e.g. "
            "ch_types=['mag', 'grad'] or ch_types=['eeg']."
        )
    if types == {"mag"}:
        return SCALINGS["mag"]
    return SCALINGS["grad"] if "grad" in types else 1e6


def check_stream_types(trained: Sequence[str], stream: Sequence[str],
                       ch_names: Sequence[str]) -> None:
    """Refuse a stream whose channels are not of the types a decoder was trained on.

    Parameters
    ----------
    trained : sequence of str
        Type of each decoder channel (in the decoder's order), as recorded in the decoder file.
    stream : sequence of str
        Type of each of the same channels in the stream (same order as ``trained``).
    ch_names : sequence of str
        The channels' names (for the message).

    Raises
    ------
    ValueError
        A channel's type differs (e.g. a gradiometer decoder given magnetometers): the
        message names the channels and both types.
    """
    wrong = [(name, t, s) for name, t, s in zip(ch_names, trained, stream, strict=True)
             if t != s]
    if wrong:
        shown = ", ".join(f"{n} ({t} in training, {s} in the stream)" for n, t, s in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise ValueError(
            f"The stream's channel types differ from the decoder's for {len(wrong)} of "
            f"{len(ch_names)} channels: {shown}{more}. The decoder was trained on "
            f"{', '.join(sorted(set(trained)))} channels; "
            "stream those channels, or train a decoder on the stream's channel types."
        )
