"""A child process that ends when the process that started it dies, even by SIGKILL (Linux's
`prctl(PR_SET_PDEATHSIG)`; elsewhere the parent's own supervision alone ends its children)."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal the kernel sends a process when its parent dies


def death_signal_setter(signal_number: int) -> Callable[[], None] | None:
    """A function that asks the kernel to send `signal_number` to the calling process when its
    parent (the thread that started it) dies; None where there is no prctl. libc is loaded here,
    so the function is safe as a `preexec_fn`, between fork and exec."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return functools.partial(prctl, PR_SET_PDEATHSIG, signal_number)
