"""SIGTERM, SIGINT and SIGUSR2: one exception, :class:`RunInterrupted`, wherever they land.

``run.py`` installs the handlers in its first lines, before any slow import; a run body
re-installs them (:func:`interrupts_as_exceptions`) so ``run.json`` records which signal stopped
the run, and hands the signal on afterwards to a handler it replaced (submitit's SIGUSR2:
checkpoint and requeue).  A job that another program runs (a submitit task) is covered for its
whole life (:func:`interrupts_handed_on`): a signal before, inside or after the run body stops
it as :class:`RunInterrupted`, and that program's handler gets it once prereg has recorded it.
A training loop defers them (:func:`deferred_interrupts`) to the end of the current update, so
its checkpoint is written first.  A signal inside an import is deferred, one swallowed by a
callback is resent, and one nothing catches ends the process with one line and status
128 + signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


class RunInterrupted(BaseException):
    """The process received SIGTERM (SLURM preemption, ``scancel``, ``kill``), SIGINT (Ctrl-C)
    or SIGUSR2 (the signal submitit asks SLURM to send before the time limit).

    A BaseException, like KeyboardInterrupt, so that a sweep stops instead of going on.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        #: the handler prereg replaced for this signal (set by :func:`interrupts_as_exceptions`)
        self.replaced: Callable[[int, Any], Any] | None = None
        #: whether :meth:`hand_on` ran (a run's guarded end does, right before recording it)
        self.handed_on = False
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.signum,))

    def hand_on(self) -> None:
        """Call the handler prereg replaced for this signal, if it was another Python one:
        under submitit, SIGUSR2's checkpoints the job and requeues it, then raises SystemExit
        (after the run's own checkpoint, so nothing is lost).  Once only, however many
        layers of the job see the exception go by."""
        replaced, self.replaced, self.handed_on = self.replaced, None, True
        if replaced is not None:
            replaced(self.signum, None)


INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


def interrupt_behind(exc: BaseException) -> BaseException | None:
    """The interrupt (:class:`RunInterrupted`, KeyboardInterrupt) that ``exc`` replaced, if any.

    A library whose cleanup (``finally``) fails while an interrupt unwinds through it raises
    its own error instead (OmegaConf: ``'NoneType' object has no attribute ...``); code that
    turns every error into one line of bad input must stop for the interrupt instead.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, (RunInterrupted, KeyboardInterrupt)):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


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
    """Signal handler: SIGTERM/SIGINT/SIGUSR2 become :class:`RunInterrupted` (run.py installs it).

    Inside an import the signal is deferred (resent until the import is done): an exception
    raised while a native extension (jaxlib) initialises can abort the whole process
    (SIGABRT/SIGSEGV) instead of unwinding.
    """
    if _importing(frame):
        _resend_later(signum)
        return
    _raised.append(signum)
    raise RunInterrupted(signum)


_raised: list[int] = []  # the signals raise_interrupted turned into RunInterrupted, in order


def interrupts_raised() -> int:
    """How many signals :func:`raise_interrupted` has raised in this process so far."""
    return len(_raised)


def raised_interrupt(since: int) -> RunInterrupted | None:
    """A :class:`RunInterrupted` for the last signal :func:`raise_interrupted` raised after the
    first ``since`` (see :func:`interrupts_raised`): for code that must not go on when some
    library swallowed that exception."""
    return RunInterrupted(_raised[-1]) if len(_raised) > since else None


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


def install_interrupt_handlers(noted: Sequence[int] = ()) -> None:
    """From now on SIGTERM, SIGINT and SIGUSR2 raise :class:`RunInterrupted` in the main
    thread; one swallowed by a callback is resent (:func:`_redeliver_swallowed`), and one that
    nothing catches ends the process with one line (:func:`_exit_interrupted`).

    ``noted``: signals an entry point's own first lines caught before this module could be
    imported (``run.py``); the first is raised now, as if it had just arrived.
    """
    sys.unraisablehook = _redeliver_swallowed
    sys.excepthook = _exit_interrupted
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, raise_interrupted)
    if noted:
        raise RunInterrupted(noted[0])


@contextmanager
def _installed(handler: Callable[[int, Any], Any]) -> Iterator[dict[signal.Signals, Any]]:
    """``handler`` for SIGTERM, SIGINT and SIGUSR2, and :func:`_redeliver_swallowed`, for the
    block; yields the handlers it replaced, restored at the end (outside the main thread
    nothing is installed and it yields ``{}``)."""
    try:
        previous = {s: signal.signal(s, handler) for s in INTERRUPT_SIGNALS}
    except ValueError:  # not in the main thread
        yield {}
        return
    hook, sys.unraisablehook = sys.unraisablehook, _redeliver_swallowed
    try:
        yield previous
    finally:
        sys.unraisablehook = hook
        for signum, old in previous.items():
            signal.signal(signum, old)


def _replaceable(handler: Any) -> bool:
    """Whether ``handler`` is another program's Python handler (submitit's), to hand on to."""
    ours = (raise_interrupted, signal.default_int_handler)
    return callable(handler) and handler not in ours and not isinstance(handler, (Deferred, HandOn))


class HandOn:
    """The signal handler of :func:`interrupts_handed_on`, for a job's whole life.

    A signal raises :class:`RunInterrupted` where it lands, as :func:`raise_interrupted` does;
    the job hands it on to ``targets[signum]`` (another program's handler, e.g. submitit's
    SIGUSR2 requeue) after recording it.  Once an interrupt is stopping the job
    (:meth:`stop`), later signals are only noted in :attr:`later`: SLURM's SIGTERM that follows
    a requeue must not cut short the record or the requeue of the first.
    """

    def __init__(self, targets: Mapping[int, Callable[[int, Any], Any]]) -> None:
        self.targets = {signal.Signals(s): t for s, t in targets.items()}
        self.stopping: RunInterrupted | None = None
        self.later: list[int] = []

    def __call__(self, signum: int, frame: Any) -> None:
        if self.stopping is not None:
            self.later.append(int(signum))
            return
        raise_interrupted(signum, frame)

    def stop(self, exc: RunInterrupted) -> RunInterrupted:
        """Note that ``exc`` stops the job, and give it the target for its signal unless it
        has been handed on already (:attr:`RunInterrupted.handed_on`); ``exc`` itself."""
        if self.stopping is None:
            self.stopping = exc
        if not exc.handed_on and exc.replaced is None:
            exc.replaced = self.targets.get(signal.Signals(exc.signum))
        return exc


@contextmanager
def interrupts_handed_on(
    targets: Mapping[int, Callable[[int, Any], Any]],
) -> Iterator[HandOn]:
    """SIGTERM, SIGINT and SIGUSR2 raise :class:`RunInterrupted` for the whole block (main
    thread only), and a run body inside it hands them on to ``targets`` (see :class:`HandOn`).

    For a job that another program starts and stops (a submitit task: its SIGUSR2 handler
    checkpoints and requeues, SIGTERM it ignores): prereg sees every signal, wherever it lands,
    and records the run's stop before that program acts on it.  Code in the block that catches
    the :class:`RunInterrupted` calls :meth:`HandOn.stop` on it, then (if the run has not)
    records and hands it on, still inside the block so that later signals are only noted.  The
    handlers in place before are restored at its end.
    """
    handler = HandOn(targets)
    with _installed(handler):
        yield handler


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGUSR2 raise :class:`RunInterrupted` while the run body executes
    (main thread only), so ``run.json`` records which signal stopped the run; the exception
    carries the handler replaced for its signal (:meth:`RunInterrupted.hand_on`), or inside
    :func:`interrupts_handed_on` that block's target for it."""
    with _installed(raise_interrupted) as previous:
        try:
            yield
        except RunInterrupted as exc:
            replaced = previous.get(signal.Signals(exc.signum))
            if isinstance(replaced, HandOn):
                replaced.stop(exc)
            elif exc.replaced is None and not exc.handed_on and _replaceable(replaced):
                exc.replaced = replaced
            raise


class Deferred:
    """The signal handler of :func:`deferred_interrupts`: notes the first interrupt signal."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = int(signum)

    def raise_pending(self) -> None:
        """Raise :class:`RunInterrupted` for the signal noted, if any (once)."""
        signum, self.signum = self.signum, None
        if signum is not None:
            raise RunInterrupted(signum)


@contextmanager
def deferred_interrupts() -> Iterator[Deferred]:
    """Within the block SIGTERM, SIGINT and SIGUSR2 are only noted; the block calls
    :meth:`Deferred.raise_pending` where stopping loses nothing (after a checkpoint).

    A training loop runs under it: a signal during an update lets the update finish and its
    checkpoint be written, then the run stops as if the signal had just arrived.  A signal
    still pending when the block ends (by an exception too) is raised then: the user's stop
    wins over the run's own ending.  Outside the main thread it does nothing.
    """
    deferred = Deferred()
    try:
        previous = {s: signal.signal(s, deferred) for s in INTERRUPT_SIGNALS}
    except ValueError:  # not in the main thread
        yield deferred
        return
    try:
        yield deferred
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        deferred.raise_pending()
