"""Ctrl-C and SIGTERM for long runs: both interrupt, and neither can cut a save short.

    with interrupts():                 # SIGTERM raises Interrupted, like Ctrl-C
        ...training...
        with deferred_interrupts():    # a signal here waits until the block is done
            save_checkpoint(...)

``Interrupted`` is a KeyboardInterrupt, so code that handles Ctrl-C handles
SIGTERM the same way; its ``signum`` says which signal came (the command line
exits with 128 + signum: 130 for Ctrl-C, 143 for SIGTERM).

``deferred_interrupts`` holds back SIGINT and SIGTERM inside its block and,
at its end, hands the first one that came to the handler in place before (so
inside ``interrupts()`` it raises Interrupted, outside it does what the signal
would have done). ``deferred_interrupts(deliver=False)``
swallows them instead: for the save that an interrupt itself triggered, where a
second Ctrl-C must neither cut the save short nor raise again. Both yield the
list of the signals that came (a process group passes them on to its peers,
``minipixel.distributed``). Signal handlers
can only be set in the main thread; elsewhere both blocks run unprotected.
"""
import contextlib
import os
import signal
import threading

__all__ = ["Interrupted", "interrupts", "deferred_interrupts", "SIGNALS"]

SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                if s is not None)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM; ``signum`` is the signal's number."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler):
    """Install `handler` for SIGINT and SIGTERM inside the block; restore the old ones."""
    old = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield old
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def interrupts():
    """Inside the block the first SIGINT or SIGTERM raises Interrupted (a KeyboardInterrupt);
    later ones are ignored, so the handler of the first (a save) runs to its end."""
    if not _in_main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)
    with _handlers(handler):
        yield


@contextlib.contextmanager
def deferred_interrupts(deliver=True):
    """Hold SIGINT and SIGTERM back inside the block (which gets the list of those that
    came); at its end hand the first one to the handler that was in place before
    (deliver=True), or drop them."""
    received = []
    if not _in_main_thread():
        yield received
        return
    with _handlers(lambda signum, frame: received.append(signum)) as old:
        yield received
    if received and deliver:
        signum = received[0]
        handler = old.get(signum)
        if callable(handler):
            handler(signum, None)        # Python's Ctrl-C handler, or the one of interrupts()
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)  # what the signal would have done
