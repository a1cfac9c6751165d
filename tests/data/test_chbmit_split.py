"""Split of a CHB-MIT case by file (held-out continuous recordings)."""

from __future__ import annotations

import numpy as np
import pytest

from bci.data.chbmit import split_files

ONE = np.array([[1.0, 2.0]])
NONE = np.zeros((0, 2))


def test_last_seizure_and_seizure_free_files_are_held_out():
    train, test = split_files([ONE, NONE, ONE, NONE, ONE])
    # 3 seizure files: round(0.9) = 1 held out (the last); 2 quiet: round(0.6) = 1
    assert train == [0, 1, 2]
    assert test == [3, 4]


def test_fraction_of_a_larger_case():
    intervals = [ONE] * 10 + [NONE] * 4
    train, test = split_files(intervals, test_fraction=0.3)
    assert test == [7, 8, 9, 13]
    assert train == list(range(7)) + [10, 11, 12]
    # at least one seizure file always trains
    train, test = split_files([ONE, ONE, NONE], test_fraction=0.9)
    assert train == [0]
    assert test == [1, 2]
    # a case without seizure-free files
    assert split_files([ONE, ONE]) == ([0], [1])


def test_too_few_seizure_files_names_them():
    with pytest.raises(ValueError, match=r"at least 2 files with seizures.*\(a\.edf, b\.edf, "
                                         r"c\.edf\) have 1"):
        split_files([ONE, NONE, NONE], names=["a.edf", "b.edf", "c.edf"])
    with pytest.raises(ValueError, match=r"\(#0, #1\) have 0"):
        split_files([NONE, NONE])
    with pytest.raises(ValueError, match="test_fraction"):
        split_files([ONE, ONE], test_fraction=0.0)
