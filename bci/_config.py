"""Where data live: the one place that resolves data folders (private).

Locations follow MNE and MOABB: a dataset's own key ``MNE_DATASETS_<SIGN>_PATH``, then
``MNE_DATA``, then ``~/mne_data``, each read with :func:`mne.get_config` (environment variable
first, then ``~/.mne/mne-python.json``). Nothing here writes a configuration or prompts.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._checks import check_type

__all__ = ["config_help", "dataset_path", "mne_data_root"]


def _get_config(key: str) -> str | None:
    value = os.environ.get(key)
    if value:
        return value
    import mne

    return mne.get_config(key)


def mne_data_root() -> Path:
    """Return the MNE data root: ``MNE_DATA`` (environment or MNE config), else ``~/mne_data``."""
    root = _get_config("MNE_DATA")
    return Path(root).expanduser() if root else Path.home() / "mne_data"


def dataset_path(sign: str, folder: str | None = None,
                 path: str | os.PathLike | None = None) -> Path:
    """Folder of one dataset, as MNE and MOABB resolve it.

    Parameters
    ----------
    sign : str
        The dataset's key, e.g. ``"BONN"`` for ``MNE_DATASETS_BONN_PATH``.
    folder : str | None
        Sub-folder of the MNE data root used when the dataset's own key is not set
        (``"bonn_epilepsy"`` -> ``$MNE_DATA/bonn_epilepsy``); None for the root itself.
    path : str | os.PathLike | None
        An explicit location, which wins over the configuration.

    Returns
    -------
    path : Path
        The folder (not checked for existence: the caller's error names what it looked for).

    Examples
    --------
    >>> import os
    >>> os.environ["MNE_DATASETS_BONN_PATH"] = "/data/bonn"
    >>> dataset_path("BONN", "bonn_epilepsy")
    PosixPath('/data/bonn')
    >>> del os.environ["MNE_DATASETS_BONN_PATH"]
    """
    if path is not None:
        check_type(path, (str, os.PathLike), "path")
        return Path(path).expanduser()
    own = _get_config(f"MNE_DATASETS_{sign.upper()}_PATH")
    if own:
        return Path(own).expanduser()
    root = mne_data_root()
    return root / folder if folder else root


def config_help(sign: str) -> str:
    """How to point ``bci`` at a dataset, for error messages."""
    return (f"set MNE_DATASETS_{sign.upper()}_PATH (or MNE_DATA) as an environment variable or "
            "with mne.set_config")
