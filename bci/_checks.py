"""Input validation shared by the whole package (private).

One home for the checks every module needs, in the spirit of MNE-LSL's ``utils/_checks.py``: a
wrong type raises ``TypeError``, a wrong value ``ValueError``, and every message says what was
expected (with its unit), what was got and, where it helps, how to fix it.

- :func:`check_type`, :func:`ensure_int`, :func:`check_bool`: types;
- :func:`check_real`, :func:`check_positive`, :func:`check_fraction`: finite numbers in a range
  (NaN and inf are refused unless asked for: a NaN limit must never disable a check);
- :func:`check_option`, :func:`did_you_mean`: one of a set of names;
- :func:`parse_spec`, :func:`parse_key_values`: the ``KIND:ARG,KEY=VALUE`` specs of the CLI;
- :func:`check_random_state`: numpy random state;
- :func:`check_epochs_array`, :func:`validate_epochs`: batches of epochs.
"""

from __future__ import annotations

import ast
import difflib
import math
import numbers
import reprlib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np


def _type_names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = ["None" if t is type(None) else t.__name__ for t in types]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8


def _short(value: Any) -> str:
    """Return ``repr(value)`` shortened for messages (a whole array or model would drown them)."""
    return _REPR.repr(value)


def _hinted(message: str, hint: str) -> str:
    """Append ``hint`` (a sentence: what the value means or how to fix it) to ``message``."""
    return f"{message} {hint}" if hint else message


def check_type(value: Any, types: type | tuple[type, ...], name: str, *,
               hint: str = "") -> Any:
    """Return ``value`` if it is an instance of ``types``; raise ``TypeError`` otherwise.

    Parameters
    ----------
    value : object
        The value to check.
    types : type | tuple of type
        Accepted types (``type(None)`` for None).
    name : str
        Name of the argument, used in the message.
    hint : str
        A sentence appended to the message (what the value is for, how to fix it).

    Returns
    -------
    value : object
        ``value``, unchanged.

    Examples
    --------
    >>> check_type("a.fif", (str, type(None)), "fname")
    'a.fif'
    """
    if not isinstance(value, types):
        raise TypeError(_hinted(
            f"{name} must be {_type_names(types)}, got {type(value).__name__} "
            f"({_short(value)}).", hint
        ))
    return value


def check_bool(value: Any, name: str, *, hint: str = "") -> bool:
    """Return ``value`` as a bool if it is one (numpy bools too); raise ``TypeError`` otherwise.

    Integers (``0``, ``1``) are refused: ``spiking=1`` is more often a slip than a choice.
    ``hint`` is a sentence appended to the message.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(_hinted(
            f"{name} must be True or False, got {type(value).__name__} ({_short(value)}).",
            hint
        ))
    return bool(value)


def ensure_int(value: Any, name: str, *, minimum: int | None = None,
               maximum: int | None = None, what: str = "", hint: str = "") -> int:
    """Return ``value`` as an int, checking its type and range.

    Parameters
    ----------
    value : object
        An integer (Python or numpy; bools are refused).
    name : str
        Name of the argument, used in the messages.
    minimum, maximum : int | None
        Inclusive bounds; None for none.
    what : str
        What the number counts (``"samples"``, ``"epochs"``), added to the messages.
    hint : str
        A sentence appended to the messages (what the value is for, how to fix it).

    Returns
    -------
    value : int

    Raises
    ------
    TypeError
        ``value`` is not an integer.
    ValueError
        ``value`` is out of range.

    Examples
    --------
    >>> ensure_int(4, "n_chans", minimum=1, what="channels")
    4
    """
    unit = f" ({what})" if what else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(_hinted(
            f"{name} must be an int{unit}, got {type(value).__name__} ({_short(value)}).",
            hint
        ))
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f">= {minimum}" if maximum is None else f"<= {maximum}" if minimum is None
                  else f"between {minimum} and {maximum}")
        raise ValueError(_hinted(f"{name} must be an int {bounds}{unit}, got {value}.", hint))
    return value


def check_real(value: Any, name: str, *, unit: str = "", low: float | None = None,
               high: float | None = None, low_inclusive: bool = True,
               high_inclusive: bool = True, allow_inf: bool = False,
               kind: str = "number", hint: str = "") -> float:
    """Return ``value`` as a float, checking that it is a real number in a range.

    NaN is always refused (every comparison with NaN is False, so a NaN limit would silently
    disable the check it sets); infinities only with ``allow_inf``.

    Parameters
    ----------
    value : object
        A real number (Python or numpy; bools are refused).
    name : str
        Name of the argument, used in the messages.
    unit : str
        Unit of the value (``"s"``, ``"Hz"``, ``"volts"``), added to the messages.
    low, high : float | None
        Bounds; None for none.
    low_inclusive, high_inclusive : bool
        Whether the bounds themselves are allowed.
    allow_inf : bool
        Accept ``inf``/``-inf`` (within the bounds), e.g. "no limit".
    kind : str
        What the number is, in the message (``"fraction"``, ``"probability"``).
    hint : str
        A sentence appended to the messages (what the value is for, how to fix it).

    Returns
    -------
    value : float

    Raises
    ------
    TypeError
        ``value`` is not a real number.
    ValueError
        ``value`` is NaN, infinite (unless allowed) or out of range.

    Examples
    --------
    >>> check_real(0.5, "erd_depth", low=0.0, high=1.0)
    0.5
    """
    unit_txt = f" ({unit})" if unit else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(_hinted(
            f"{name} must be a {kind}{unit_txt}, got {type(value).__name__} "
            f"({_short(value)}).", hint
        ))
    value = float(value)
    if low is not None and high is not None:
        expected = (f"in {'[' if low_inclusive else '('}{low:g}, {high:g}"
                    f"{']' if high_inclusive else ')'}")
    elif low is not None:
        expected = f"{'>=' if low_inclusive else '>'} {low:g}"
    elif high is not None:
        expected = f"{'<=' if high_inclusive else '<'} {high:g}"
    else:
        expected = ""
    bad = math.isnan(value) or (not allow_inf and math.isinf(value))
    if low is not None:
        bad |= value < low if low_inclusive else value <= low
    if high is not None:
        bad |= value > high if high_inclusive else value >= high
    if bad:
        kind = f"finite {kind}" if kind == "number" and not allow_inf else kind
        raise ValueError(_hinted(f"{name} must be a {kind} {expected}".rstrip()
                                 + f"{unit_txt}, got {value!r}.", hint))
    return value


def check_positive(value: Any, name: str, *, unit: str = "", allow_zero: bool = False,
                   allow_inf: bool = False, hint: str = "") -> float:
    """Return ``value`` as a float, checking that it is positive (or zero) and not NaN.

    See :func:`check_real` for the parameters and errors.

    Examples
    --------
    >>> check_positive(250, "sfreq", unit="Hz")
    250.0
    """
    return check_real(value, name, unit=unit, low=0.0, low_inclusive=allow_zero,
                      allow_inf=allow_inf, hint=hint)


def check_fraction(value: Any, name: str, *, allow_zero: bool = True,
                   allow_one: bool = False, kind: str = "fraction", hint: str = "") -> float:
    """Return ``value`` as a float, checking that it is a fraction in ``[0, 1)`` (by default).

    ``allow_zero`` and ``allow_one`` choose whether the ends of the interval are allowed;
    ``kind`` names the number in the messages (``"probability"``); see :func:`check_real`.

    Examples
    --------
    >>> check_fraction(0.25, "drop_prob", kind="probability")
    0.25
    """
    return check_real(value, name, low=0.0, high=1.0, low_inclusive=allow_zero,
                      high_inclusive=allow_one, kind=kind, hint=hint)


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` from None, a non-negative int seed or a Generator.

    Raises
    ------
    TypeError
        ``random_state`` is none of these.
    ValueError
        The seed is negative.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"{name} must be a non-negative int seed, got {random_state}.")
        return np.random.default_rng(int(random_state))
    raise TypeError(
        f"{name} must be None, an int seed or a numpy.random.Generator, got "
        f"{type(random_state).__name__}."
    )


def _literal(text: str) -> Any:
    if text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(text)  # a number, so that range checks refuse it by name
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_key_values(items: Iterable[str], *, what: str,
                     strings: Collection[str] = ()) -> dict[str, Any]:
    """Parse ``["n_classes=4", "fmin=8"]`` into ``{"n_classes": 4, "fmin": 8}``.

    Values are Python literals where they parse as one (``4``, ``8.5``, ``[1, 2]``,
    ``None``), strings otherwise; keys in ``strings`` always stay strings (names such as a class
    called ``13``), without one pair of enclosing quotes (``target='13'`` is ``13`` too).

    Parameters
    ----------
    items : iterable of str
        ``KEY=VALUE`` texts.
    what : str
        What the items configure (``"policy parameters"``), used in the message.
    strings : collection of str
        Keys whose values are kept as text.

    Returns
    -------
    params : dict

    Raises
    ------
    ValueError
        An item is not ``KEY=VALUE``, or a key repeats.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = (s.strip() for s in str(item).partition("="))
        if not sep or not key:
            raise ValueError(f"{what} must look like KEY=VALUE, got {item!r}.")
        if key in params:
            raise ValueError(f"{what}: {key!r} is given twice ({item!r}).")
        if key in strings and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        params[key] = value if key in strings else _literal(value)
    return params


def parse_spec(spec: str, *, what: str, kinds: Iterable[str],
               strings: Collection[str] = ()) -> tuple[str, list[str], dict[str, Any]]:
    """Parse a ``KIND[:ARG,...,KEY=VALUE,...]`` spec (``threshold:target=left,on=0.8``).

    Parameters
    ----------
    spec : str
        The text, e.g. ``"serial:/dev/ttyUSB0,baudrate=115200"``.
    what : str
        What the spec builds (``"policy"``, ``"stimulator"``), used in the messages.
    kinds : iterable of str
        Valid kinds; an unknown one gets a "did you mean" hint.
    strings : collection of str
        Keys whose values are kept as text (see :func:`parse_key_values`).

    Returns
    -------
    kind : str
    positional : list of str
        The comma-separated items without ``=``, in order, as text.
    params : dict
        The ``KEY=VALUE`` items.
    """
    check_type(spec, str, what)
    kind, _, rest = spec.partition(":")
    kind = check_option(what, kind.strip(), kinds)
    items = [p.strip() for p in rest.split(",") if p.strip()]
    positional = [p for p in items if "=" not in p]
    try:
        params = parse_key_values([p for p in items if "=" in p], what=f"{what} parameters",
                                  strings=strings)
    except ValueError as err:
        raise ValueError(f"{err} (in {spec!r})") from None
    return kind, positional, params


def check_sequence_of(values: Any, types: type | tuple[type, ...], name: str) -> list:
    """Return ``values`` as a list, checking that it is a sequence (not a string) of ``types``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of {_type_names(types)}, got "
                        f"{type(values).__name__} ({_short(values)}).")
    for item in values:
        check_type(item, types, f"each item of {name}")
    return list(values)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` hint, or an empty string when nothing is close."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def check_option(kind: str, name: str, candidates: Iterable[str]) -> str:
    """Check that ``name`` is one of ``candidates``; else raise a ``ValueError`` with a hint.

    A ``name`` that is not a string raises ``TypeError``.

    Examples
    --------
    >>> check_option("scheduler", "cosine", ["cosine", "plateau", "none"])
    'cosine'
    """
    candidates = list(candidates)
    if not isinstance(name, str):
        raise TypeError(
            f"{kind} must be a string, one of {', '.join(sorted(candidates))}; got "
            f"{type(name).__name__} ({name!r})."
        )
    if name not in candidates:
        raise ValueError(
            f"Unknown {kind} {name!r}.{did_you_mean(name, candidates)} "
            f"Available: {', '.join(sorted(candidates))}."
        )
    return name


def check_epochs_array(X, *, name: str = "X", n_chans: int | None = None,
                       n_times: int | None = None) -> np.ndarray:
    """Validate a batch of epochs ``(n_epochs, n_chans, n_times)`` and return it as float64.

    Raises ``ValueError`` naming the expected and received shape, or the location of the first
    non-finite sample.
    """
    arr = np.asarray(X)
    if arr.ndim == 2 and n_chans is not None and arr.shape[0] == n_chans:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (n_epochs, n_chans, n_times), got shape {arr.shape}."
        )
    if n_chans is not None and arr.shape[1] != n_chans:
        raise ValueError(
            f"{name} has {arr.shape[1]} channels, expected n_chans={n_chans}; "
            "pick and order the channels as the decoder's ch_names."
        )
    if n_times is not None and arr.shape[2] != n_times:
        raise ValueError(
            f"{name} has {arr.shape[2]} samples per epoch, expected n_times={n_times}."
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        e, c, t = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite values (NaN/inf), first at epoch {e}, "
            f"channel {c}, sample {t}; interpolate or drop bad segments before decoding."
        )
    return arr


def validate_epochs(estimator, X, *, reset: bool) -> np.ndarray:
    """Validate epochs for a scikit-learn estimator and return them as 3-D float64.

    ``sklearn.utils.validation.validate_data(estimator, X, allow_nd=True)`` (records or checks
    ``n_features_in_``, which for epochs is ``n_chans``), then ``np.atleast_3d`` as MNE's decoding
    estimators do: a 2-D ``(n_samples, n_features)`` array becomes ``(n_samples, n_features, 1)``,
    i.e. epochs of one time sample. Non-finite values raise via :func:`check_epochs_array`, which
    names the first bad epoch, channel and sample. Never modifies ``X``.
    """
    from sklearn.utils.validation import validate_data

    shape = getattr(X, "shape", None)  # arrays and DataFrames; sklearn checks the rest
    expected = getattr(estimator, "n_features_in_", None)
    if (not reset and expected is not None and shape is not None and len(shape) >= 2
            and shape[1] != expected):
        # sklearn's own wording first (its common checks match it), then ours
        raise ValueError(
            f"X has {shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input: for epochs (n_epochs, n_chans, n_times) the features "
            f"are channels, so fit saw n_chans={expected} and X of shape {shape} has "
            f"{shape[1]}; pick the same channels, in the same order, as in fit."
        )
    X = validate_data(estimator, X, allow_nd=True, dtype=np.float64,
                      ensure_all_finite=False, reset=reset)
    X = np.atleast_3d(X)
    if X.ndim != 3:
        raise ValueError(
            f"X must be 3-D (n_epochs, n_chans, n_times), got shape {X.shape}; "
            "reshape or loop over the extra axes."
        )
    return check_epochs_array(X)
