"""The shared validators of bci._checks: types, ranges, NaN/inf, options, specs, epochs."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from bci import _checks
from bci._checks import (
    check_bool,
    check_epochs_array,
    check_fraction,
    check_option,
    check_positive,
    check_random_state,
    check_real,
    check_sequence_of,
    check_type,
    did_you_mean,
    ensure_int,
    parse_key_values,
    parse_spec,
    validate_epochs,
)

pytestmark = pytest.mark.filterwarnings("error")


def test_docstring_examples_run():
    result = doctest.testmod(_checks)
    assert result.attempted >= 6
    assert result.failed == 0


# --------------------------------------------------------------------------------------------
# types
# --------------------------------------------------------------------------------------------
def test_check_type():
    path = Path("a.fif")
    assert check_type(path, (str, Path), "fname") is path
    assert check_type(None, (str, type(None)), "fname") is None
    with pytest.raises(TypeError, match=r"^fname must be str or Path, got int \(3\)\.$"):
        check_type(3, (str, Path), "fname")
    with pytest.raises(TypeError, match=r"^x must be str, int or None, got float \(1\.5\)\.$"):
        check_type(1.5, (str, int, type(None)), "x")
    with pytest.raises(TypeError, match=r"got list \(\[\]\)\. Pass a folder\.$"):
        check_type([], str, "path", hint="Pass a folder.")
    # a long value is shortened in the message
    with pytest.raises(TypeError) as err:
        check_type(np.zeros((1000, 1000)), str, "fname")
    assert str(err.value).startswith("fname must be str, got ndarray (array([[0., 0.")
    assert len(str(err.value)) < 200


def test_check_bool():
    assert check_bool(True, "flag") is True
    out = check_bool(np.bool_(False), "flag")
    assert out is False
    assert type(out) is bool
    for bad in (1, 0, "True", None, 1.0):
        with pytest.raises(TypeError, match=r"^flag must be True or False, got "):
            check_bool(bad, "flag")
    with pytest.raises(TypeError, match=r"got int \(1\)\. Spiking or not\.$"):
        check_bool(1, "spiking", hint="Spiking or not.")


def test_ensure_int():
    assert ensure_int(3, "n") == 3
    out = ensure_int(np.int64(7), "n", minimum=1, maximum=7)
    assert out == 7
    assert type(out) is int
    assert ensure_int(-4, "offset") == -4  # no bounds: any int
    for bad in (2.0, "2", None, np.float64(2.0), True, np.bool_(True)):
        with pytest.raises(TypeError, match=r"^n must be an int \(epochs\), got "):
            ensure_int(bad, "n", minimum=1, what="epochs")
    with pytest.raises(ValueError, match=r"^n must be an int >= 1 \(epochs\), got 0\.$"):
        ensure_int(0, "n", minimum=1, what="epochs")
    with pytest.raises(ValueError, match=r"^n must be an int <= 5, got 6\.$"):
        ensure_int(6, "n", maximum=5)
    with pytest.raises(ValueError, match=r"^subject must be an int between 1 and 24, got 25\.$"):
        ensure_int(25, "subject", minimum=1, maximum=24)
    with pytest.raises(ValueError, match=r"got 0\. Use 1 or more\.$"):
        ensure_int(0, "n", minimum=1, hint="Use 1 or more.")
    with pytest.raises(TypeError, match=r"got float \(1\.0\)\. Use 1 or more\.$"):
        ensure_int(1.0, "n", minimum=1, hint="Use 1 or more.")


# --------------------------------------------------------------------------------------------
# real numbers
# --------------------------------------------------------------------------------------------
def test_check_real_accepts_and_converts():
    out = check_real(np.float32(0.5), "x", low=0.0, high=1.0)
    assert out == 0.5
    assert type(out) is float
    assert check_real(3, "x") == 3.0
    assert check_real(0.0, "x", low=0.0) == 0.0  # inclusive by default
    assert check_real(1.0, "x", high=1.0) == 1.0
    assert check_real(math.inf, "timeout_s", low=0.0, allow_inf=True) == math.inf
    assert check_real(-math.inf, "x", allow_inf=True) == -math.inf


@pytest.mark.parametrize("bad", [True, np.bool_(False), "1.0", None, [1.0], np.array([1.0]),
                                 1 + 2j])
def test_check_real_type_errors(bad):
    with pytest.raises(TypeError, match=r"^window_s must be a number \(s\), got "):
        check_real(bad, "window_s", unit="s", low=0.0)


@pytest.mark.parametrize(("kwargs", "value", "match"), [
    ({"low": 0.0, "low_inclusive": False}, 0.0,
     r"^x must be a finite number > 0 \(s\), got 0\.0\.$"),
    ({"low": 0.0}, -1.0, r"^x must be a finite number >= 0 \(s\), got -1\.0\.$"),
    ({"high": 1.0, "high_inclusive": False}, 1.0, r"^x must be a finite number < 1 \(s\)"),
    ({"high": 1.0}, 2.0, r"^x must be a finite number <= 1 \(s\), got 2\.0\.$"),
    ({"low": 0.0, "high": 1.0}, 1.5, r"^x must be a finite number in \[0, 1\] \(s\), got 1\.5"),
    ({"low": 0.0, "high": 1.0, "low_inclusive": False, "high_inclusive": False}, 0.0,
     r"^x must be a finite number in \(0, 1\) \(s\), got 0\.0"),
    ({}, math.nan, r"^x must be a finite number \(s\), got nan\.$"),
    ({}, math.inf, r"^x must be a finite number \(s\), got inf\.$"),
    ({"low": 0.0}, math.inf, r"^x must be a finite number >= 0 \(s\), got inf\.$"),
    ({"low": 0.0, "allow_inf": True}, -math.inf, r"^x must be a number >= 0 \(s\), got -inf"),
    ({"low": 0.0, "allow_inf": True}, math.nan, r"^x must be a number >= 0 \(s\), got nan\.$"),
    ({"low": 0.0, "hint": "Pass seconds."}, -1.0, r"got -1\.0\. Pass seconds\.$"),
])
def test_check_real_value_errors(kwargs, value, match):
    with pytest.raises(ValueError, match=match):
        check_real(value, "x", unit="s", **kwargs)


def test_nan_never_passes_a_limit():
    """Every comparison with NaN is False: a NaN limit must never disable the check."""
    for call in (lambda v: check_real(v, "x"), lambda v: check_real(v, "x", allow_inf=True),
                 lambda v: check_positive(v, "x"), lambda v: check_positive(v, "x",
                                                                            allow_zero=True),
                 lambda v: check_fraction(v, "x"), lambda v: check_fraction(v, "x",
                                                                            allow_one=True)):
        for nan in (math.nan, np.float64("nan"), np.float32("nan")):
            with pytest.raises(ValueError, match="got nan"):
                call(nan)


def test_check_positive():
    assert check_positive(250, "sfreq", unit="Hz") == 250.0
    assert check_positive(0.0, "gap_s", allow_zero=True) == 0.0
    assert check_positive(math.inf, "timeout_s", allow_inf=True) == math.inf
    with pytest.raises(ValueError, match=r"^sfreq must be a finite number > 0 \(Hz\), got 0\.0\.$"):
        check_positive(0, "sfreq", unit="Hz")
    with pytest.raises(ValueError, match=r"^gap_s must be a finite number >= 0, got -1\.0\.$"):
        check_positive(-1, "gap_s", allow_zero=True)
    with pytest.raises(ValueError, match=r"^sfreq must be a finite number > 0 \(Hz\), got inf"):
        check_positive(math.inf, "sfreq", unit="Hz")
    with pytest.raises(TypeError, match=r"^sfreq must be a number \(Hz\), got bool \(True\)\.$"):
        check_positive(True, "sfreq", unit="Hz")
    with pytest.raises(ValueError, match=r"got -2\.0\. Eps of the norm\.$"):
        check_positive(-2.0, "eps", hint="Eps of the norm.")


def test_check_fraction():
    assert check_fraction(0, "val_fraction") == 0.0
    assert check_fraction(1, "train_ratio", allow_one=True) == 1.0
    with pytest.raises(ValueError, match=r"^val_fraction must be a fraction in \[0, 1\), got 1\.0"):
        check_fraction(1.0, "val_fraction")
    with pytest.raises(ValueError, match=r"^p must be a fraction in \(0, 1\], got 0\.0\.$"):
        check_fraction(0.0, "p", allow_zero=False, allow_one=True)
    with pytest.raises(ValueError, match=r"^drop_prob must be a probability in \[0, 1\), got 1\.5"):
        check_fraction(1.5, "drop_prob", kind="probability")
    with pytest.raises(TypeError, match=r"^drop_prob must be a probability, got str \('0\.1'\)"):
        check_fraction("0.1", "drop_prob", kind="probability")
    with pytest.raises(ValueError, match=r"got -0\.1\. Share of epochs held out\.$"):
        check_fraction(-0.1, "val_fraction", hint="Share of epochs held out.")


def test_check_random_state():
    gen = np.random.default_rng(0)
    assert check_random_state(gen) is gen
    assert isinstance(check_random_state(None), np.random.Generator)
    np.testing.assert_array_equal(check_random_state(5).random(3),
                                  np.random.default_rng(5).random(3))
    np.testing.assert_array_equal(check_random_state(np.int64(5)).random(3),
                                  np.random.default_rng(5).random(3))
    with pytest.raises(ValueError, match=r"^seed must be a non-negative int seed, got -1\.$"):
        check_random_state(-1, "seed")
    for bad in (True, 1.5, "0", np.random.RandomState(0)):
        with pytest.raises(TypeError, match=r"^random_state must be None, an int seed or a "
                                            r"numpy\.random\.Generator, got "):
            check_random_state(bad)


# --------------------------------------------------------------------------------------------
# options and specs
# --------------------------------------------------------------------------------------------
def test_did_you_mean():
    assert did_you_mean("cosin", ["cosine", "plateau"]) == " Did you mean 'cosine'?"
    assert did_you_mean("EEGnex", ["EEGNeX", "EEGNet"]) == " Did you mean 'EEGNeX'?"
    assert did_you_mean("xyz", ["cosine", "plateau"]) == ""


def test_check_option():
    assert check_option("scheduler", "cosine", ("cosine", "none")) == "cosine"
    assert check_option("model", "EEGNet", {"EEGNet": 1, "EEGNeX": 2}) == "EEGNet"
    with pytest.raises(ValueError, match=r"^Unknown scheduler 'cosin'\. Did you mean 'cosine'\? "
                                         r"Available: cosine, none\.$"):
        check_option("scheduler", "cosin", ("none", "cosine"))
    with pytest.raises(ValueError, match=r"^Unknown scheduler 'xyz'\. Available: cosine, none"):
        check_option("scheduler", "xyz", ("none", "cosine"))
    for bad in (None, 1, ["cosine"]):
        with pytest.raises(TypeError, match=r"^scheduler must be a string, one of cosine, none; "
                                            r"got "):
            check_option("scheduler", bad, ("none", "cosine"))


def test_check_sequence_of():
    assert check_sequence_of(("a", "b"), str, "names") == ["a", "b"]
    assert check_sequence_of(np.array([1, 2]), (int, np.integer), "idx") == [1, 2]
    with pytest.raises(TypeError, match=r"^names must be a sequence of str, got str \('ab'\)"):
        check_sequence_of("ab", str, "names")
    with pytest.raises(TypeError, match=r"^each item of names must be str, got int \(3\)"):
        check_sequence_of(["a", 3], str, "names")


def test_parse_key_values():
    assert parse_key_values(["n_classes=4", "fmin = 8.5", "events=[1, 2]", "name=abc",
                             "target=13"], what="parameters", strings={"target"}) == {
        "n_classes": 4, "fmin": 8.5, "events": [1, 2], "name": "abc", "target": "13"}
    with pytest.raises(ValueError, match=r"^parameters must look like KEY=VALUE, got 'n4'\.$"):
        parse_key_values(["n4"], what="parameters")
    with pytest.raises(ValueError, match=r"^parameters must look like KEY=VALUE, got '=4'"):
        parse_key_values(["=4"], what="parameters")
    with pytest.raises(ValueError, match=r"^parameters: 'n' is given twice \('n=2'\)\.$"):
        parse_key_values(["n=1", "n=2"], what="parameters")


def test_parse_spec():
    assert parse_spec("serial:/dev/ttyUSB0,baudrate=115200", what="stimulator",
                      kinds=("serial", "audio")) == ("serial", ["/dev/ttyUSB0"],
                                                     {"baudrate": 115200})
    assert parse_spec("audio", what="stimulator", kinds=("serial", "audio")) == ("audio", [], {})
    with pytest.raises(ValueError, match=r"Unknown stimulator 'serail'\. Did you mean 'serial'"):
        parse_spec("serail:x", what="stimulator", kinds=("serial", "audio"))
    with pytest.raises(ValueError, match=r"stimulator parameters: 'a' is given twice .* \(in "
                                         r"'serial:a=1,a=2'\)"):
        parse_spec("serial:a=1,a=2", what="stimulator", kinds=("serial",))
    with pytest.raises(TypeError, match=r"^stimulator must be str, got int"):
        parse_spec(3, what="stimulator", kinds=("serial",))


# --------------------------------------------------------------------------------------------
# epochs
# --------------------------------------------------------------------------------------------
def test_check_epochs_array():
    X = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    out = check_epochs_array(X, n_chans=3, n_times=4)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, X)
    single = check_epochs_array(X[0], n_chans=3)  # one epoch (n_chans, n_times)
    assert single.shape == (1, 3, 4)
    with pytest.raises(ValueError, match=r"^X must be 3-D \(n_epochs, n_chans, n_times\), got "
                                         r"shape \(3, 4\)\.$"):
        check_epochs_array(X[0])
    with pytest.raises(ValueError, match=r"^X has 3 channels, expected n_chans=2; pick"):
        check_epochs_array(X, n_chans=2)
    with pytest.raises(ValueError, match=r"^X has 4 samples per epoch, expected n_times=5\.$"):
        check_epochs_array(X, n_times=5)
    with pytest.raises(TypeError, match=r"^X must be numeric, got dtype <U1\.$"):
        check_epochs_array(np.full((1, 2, 3), "a"))
    bad = X.astype(float)
    bad[1, 2, 3] = np.inf
    bad[1, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X contains 2 non-finite values \(NaN/inf\), first at "
                                         r"epoch 1, channel 2, sample 1; interpolate"):
        check_epochs_array(bad)
    assert np.isnan(bad[1, 2, 1])  # the input is not modified


class _Est(BaseEstimator):
    pass


def test_validate_epochs():
    X = np.random.default_rng(0).standard_normal((5, 3, 10))
    est = _Est()
    out = validate_epochs(est, X, reset=True)
    assert est.n_features_in_ == 3
    np.testing.assert_array_equal(out, X)
    assert validate_epochs(est, X[:, :, :4], reset=False).shape == (5, 3, 4)
    as_epochs = validate_epochs(_Est(), X[:, :, 0], reset=True)  # 2-D: one sample per epoch
    assert as_epochs.shape == (5, 3, 1)
    with pytest.raises(ValueError, match=r"fit saw n_chans=3 and X of shape \(5, 2, 10\) has 2; "
                                         r"pick the same channels"):
        validate_epochs(est, X[:, :2], reset=False)
    with pytest.raises(ValueError, match=r"^X must be 3-D \(n_epochs, n_chans, n_times\), got "
                                         r"shape \(5, 3, 2, 5\)"):
        validate_epochs(_Est(), X.reshape(5, 3, 2, 5), reset=True)
    bad = X.copy()
    bad[4, 0, 9] = np.nan
    with pytest.raises(ValueError, match=r"first at epoch 4, channel 0, sample 9"):
        validate_epochs(_Est(), bad, reset=True)
