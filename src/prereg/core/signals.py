"""SIGTERM and Ctrl-C: one exception, :class:`RunInterrupted`, wherever they land.

``run.py`` installs the handlers before its slow imports; a run body re-installs them
(:func:`interrupts_as_exceptions`) so ``run.json`` records which signal stopped the run.  A
signal inside an import is deferred, one swallowed by a callback is resent, and one nothing
catches ends the process with one line and status 128 + signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class RunInterrupted(BaseException):
    """The process received SIGTERM (SLURM preemption, timeout, ``scancel``, ``kill``) or
    SIGINT (Ctrl-C).

    A BaseException, like KeyboardInterrupt, so that a sweep stops instead of going on.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.signum,))


INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _resend_later(signum: int) -> None:
    """Send ``signum`` to the main thread again a moment later (from a timer thread)."""
    resend = threading.Timer(0.02, signal.pthread_kill, (threading.main_thread().ident, signum))
    resend.daemon = True
    resend.start()


def _importing(frame: Any) -> bool:
    """Whether the main thread is inside an ``import`` (possibly of a native extension)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def raise_interrupted(signum: int, frame: Any) -> None:
    """Signal handler: SIGTERM/SIGINT become :class:`RunInterrupted` (run.py installs it).

    Inside an import the signal is deferred (resent until the import is done): an exception
    raised while a native extension (jaxlib) initialises can abort the whole process
    (SIGABRT/SIGSEGV) instead of unwinding.
    """
    if _importing(frame):
        _resend_later(signum)
        return
    raise RunInterrupted(signum)


def _redeliver_swallowed(unraisable: Any) -> None:
    """``sys.unraisablehook``: an interrupt raised where Python ignores exceptions is resent.

    A signal handler runs wherever the main thread is, including inside a garbage-collector
    callback (JAX registers one) or a ``__del__``, where Python prints "Exception ignored"
    and carries on: Ctrl-C or SLURM's SIGTERM would be lost and the run go on.  The signal
    is sent to the main thread again a moment later, from outside that callback.
    """
    exc = unraisable.exc_value
    if isinstance(exc, RunInterrupted):
        signum = exc.signum
    elif isinstance(exc, KeyboardInterrupt):
        signum = signal.SIGINT
    else:
        return _ORIGINAL_UNRAISABLEHOOK(unraisable)
    _resend_later(signum)
    return None


_ORIGINAL_UNRAISABLEHOOK = sys.unraisablehook
_ORIGINAL_EXCEPTHOOK = sys.excepthook


def interrupted_message(exc: RunInterrupted) -> str:
    """What the user sees when a signal stops ``run.py``."""
    return f"error: {exc}; run the same command again to resume"


def _exit_interrupted(exc_type: type, exc: BaseException, tb: Any) -> None:
    """``sys.excepthook``: an interrupt that reached the top level (start-up, before
    ``run.py`` catches it) is one line and status 128 + signal, like any other."""
    if not isinstance(exc, RunInterrupted):
        return _ORIGINAL_EXCEPTHOOK(exc_type, exc, tb)
    print(interrupted_message(exc), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + exc.signum)


def install_interrupt_handlers() -> None:
    """From now on SIGTERM and SIGINT raise :class:`RunInterrupted` in the main thread; one
    swallowed by a callback is resent (:func:`_redeliver_swallowed`), and one that nothing
    catches ends the process with one line (:func:`_exit_interrupted`)."""
    sys.unraisablehook = _redeliver_swallowed
    sys.excepthook = _exit_interrupted
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, raise_interrupted)


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`RunInterrupted` while the run body executes (main
    thread only), so ``run.json`` records which signal stopped the run."""
    try:
        previous = {s: signal.signal(s, raise_interrupted) for s in INTERRUPT_SIGNALS}
    except ValueError:  # not in the main thread
        yield
        return
    hook, sys.unraisablehook = sys.unraisablehook, _redeliver_swallowed
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
