"""Torch CPU thread count for a block of code (private; imports torch only, not Lightning)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .._checks import ensure_int


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n_threads)``, then restore the previous count.

    Nothing changes when ``n_threads`` is None.
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(ensure_int(n_threads, "n_threads", minimum=1, what="CPU threads"))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
