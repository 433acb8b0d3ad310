"""Progress of long work as log lines: done / total, rate and time left, at most every
``interval`` seconds and once at the end.

Plain functions take an optional ``log`` callable and count their work into a ``Progress``; the
thin asset functions pass ``context.log.info``, so the lines reach the Dagster log (and a
training launched through Pipes sends them back the same way)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

INTERVAL_S = 30.0


class Progress:
    """Counts work towards ``total`` ``unit`` and logs lines such as
    ``evaluation: 12,000 / 50,546 users (23.7%), 410 users/s, about 1m 34s left``: at most every
    ``interval`` seconds (0: at every update) and, once, a closing line from ``finish()`` or from
    the end of a ``with`` block that raised nothing. ``log=None`` counts without logging.
    ``done``: work finished before this run (a resumed training), left out of the rate.
    Updates may come from several threads."""

    def __init__(
        self,
        log: Callable[[str], None] | None,
        label: str,
        total: int,
        unit: str,
        interval: float = INTERVAL_S,
        done: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.label, self.total, self.unit = log, label, total, unit
        self.interval, self.clock = interval, clock
        self.done = self._first = done
        self._started = self._logged = clock()
        self._finished = False
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:  # a failure is reported by its exception, not as the end
            self.finish()

    def update(self, count: int = 1) -> None:
        """``count`` more done; a line if ``interval`` seconds have passed since the last, unless
        all is done (the closing line says so)."""
        with self._lock:
            self.done += count
            now = self.clock()
            if self.log is None or self.done >= self.total or now - self._logged < self.interval:
                return
            self._logged = now
            # logged under the lock, so that lines from several threads come in order
            self.log(self._line(now, finished=False))

    def finish(self) -> None:
        """The closing line, with the time the whole run took; only the first call logs."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if self.log is not None:
                self.log(self._line(self.clock(), finished=True))

    def _line(self, now: float, finished: bool) -> str:
        seconds = now - self._started
        share = 100.0 * self.done / self.total if self.total else 100.0
        parts = [f"{self.label}: {self.done:,} / {self.total:,} {self.unit} ({share:.1f}%)"]
        rate = (self.done - self._first) / seconds if seconds > 0 else None
        if rate is not None:
            parts.append(f"{_number(rate)} {self.unit}/s")
        if finished:
            parts.append(f"took {_duration(seconds)}")
        elif rate:
            parts.append(f"about {_duration(max(0, self.total - self.done) / rate)} left")
        return ", ".join(parts)


def _number(rate: float) -> str:
    """410, 1,250; two significant digits under 10 (2.3, 0.25): slow work still shows a rate."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def _duration(seconds: float) -> str:
    """12s, 1m 34s, 2h 5m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {whole}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"
