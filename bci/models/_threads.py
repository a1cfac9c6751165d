"""Torch CPU thread count for a block of code (private; imports torch only, not Lightning)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n_threads)``, restoring the previous count
    (nothing changes when None).
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(_check_n_threads(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_n_threads(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"n_threads must be a positive integer, got {value!r}.")
    return value
