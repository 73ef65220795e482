"""A tiny dependency-free progress bar: carriage return, steps/s, ETA, running values.

    bar = Progress(total=250, desc="epoch 1/3")
    for i in range(250):
        ...
        bar.update(1, loss=f"{loss:.1f}")
    bar.close()

On a terminal the line is redrawn in place (at most ~10 times a second).
When the stream is not a terminal (a log file, nohup) it prints a plain line
every `log_every` seconds and at the end instead, so logs stay readable.
"""
import sys
import time

__all__ = ["Progress", "format_time"]


def format_time(seconds):
    """12.3 -> '0:12', 3725 -> '1:02:05'."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total, desc="", stream=None, enabled=True, width=24, log_every=30.0,
                 unit="it", initial=0):
        self.total, self.desc, self.width, self.unit = int(total), desc, width, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every = log_every
        self.n = self.initial = int(initial)     # initial: done before this session
        self.values = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False

    def rate(self):
        elapsed = time.perf_counter() - self.start
        return (self.n - self.initial) / elapsed if elapsed > 0 else 0.0

    def line(self):
        elapsed = time.perf_counter() - self.start
        rate = self.rate()
        eta = (self.total - self.n) / rate if rate > 0 else None
        frac = min(self.n / self.total, 1.0) if self.total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        values = "".join(f" {k} {v}" for k, v in self.values.items())
        return (f"{self.desc} [{bar}] {self.n}/{self.total} {rate:.2f} {self.unit}/s "
                f"{format_time(elapsed)}<{format_time(eta)}{values}")

    def update(self, n=1, **values):
        self.n += n
        self.values.update(values)
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw >= 0.1 or self.n >= self.total:
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
                self._last_draw = now
        elif now - self._last_draw >= self.log_every and self.n < self.total:
            if self._last_draw == 0.0:          # no line at the very first step
                self._last_draw = now
                return
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_draw = now

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self.stream.write(("\r" + self.line() + "\x1b[K\n") if self.tty else self.line() + "\n")
            self.stream.flush()
