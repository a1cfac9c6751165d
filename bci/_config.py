"""Where data live: the one place that resolves data folders (private).

Also :func:`writable_dir`, which checks an output folder (session recordings, benchmark results)
before any work is done.

Locations follow MNE and MOABB: a dataset's own key ``MNE_DATASETS_<SIGN>_PATH``, then
``MNE_DATA``, then ``~/mne_data``, each read with :func:`mne.get_config` (environment variable
first, then ``~/.mne/mne-python.json``). Nothing here writes a configuration or prompts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ._checks import check_type

__all__ = ["config_help", "dataset_path", "mne_data_root", "writable_dir"]


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


def writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it.

    Meant to run before any long work (a session, an evaluation), so that an unwritable place
    fails at once with a clear message instead of a traceback at the end. Writes and removes a
    small probe file (permissions are not enough: root ignores them, and a read-only or full
    file system refuses writes whatever they say).

    Parameters
    ----------
    path : str | os.PathLike
        The folder.
    what : str
        What the folder is for (``"--out folder"``, ``"session folder"``), in the message.

    Returns
    -------
    path : Path
        The folder, created.

    Raises
    ------
    OSError
        The folder cannot be created or written to (the same ``OSError`` subclass as the
        underlying error: ``NotADirectoryError``, ``PermissionError``...), with a message
        naming the folder, the reason and the fix.
    """
    check_type(path, (str, os.PathLike), what)
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".bci-write-probe-", dir=path)
        try:
            os.write(fd, b"bci")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
        raise type(err)(
            f"Cannot write to the {what} {str(path)!r}: {reason}{where}. Choose a folder on a "
            "writable disk with free space (a path under a file, a read-only file system or a "
            "full disk cannot hold results)."
        ) from err
    return path
