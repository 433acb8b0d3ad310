"""Micro-batching: concurrent requests share passes through the model."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from dataclasses import dataclass, field

from recsys_pipeline.serving.bundle import Bundle, Recommendation
from recsys_pipeline.serving.schemas import MAX_BATCH, ItemId


@dataclass(frozen=True)
class Job:
    """One request's histories, waiting for a pass."""

    bundle: Bundle  # the bundle the request started with: a pass scores one bundle's jobs
    histories: list[list[ItemId]]
    k: int
    exclude: bool
    done: asyncio.Future  # set to the request's list[Recommendation], or to the pass's error


@dataclass
class Waiting:
    """The requests one event loop has queued for its next pass."""

    jobs: collections.deque[Job] = field(default_factory=collections.deque)
    # the scheduled pass (a timer while it may wait), or the offloaded pass still running
    next: asyncio.Handle | asyncio.Future | None = None


class Batcher:
    """Concurrent requests share passes through the model. A request queues its histories and, if
    nothing is scheduled, schedules a pass. Under load (the last pass scored more than one
    history) the pass waits for as many histories as the last pass scored, at most ``wait_ms``; a
    lone request is scored at once. Measured at concurrency 8 (bench/serving_load.py): without
    the wait most passes scored 1 to 3 histories and p99 was 34 ms; with it, passes of 8.

    Small passes run on the event loop's own thread, because a worker thread competed with the
    loop for the GIL on every torch op: a pass of 4 histories took 11.7 ms in the service against
    4.9 ms alone. Passes of ``offload_at`` histories or more run on one worker thread, whose long
    kernels release the GIL, so the loop goes on reading requests: run on the loop, such passes
    kept it busy all the time and requests still being parsed waited (p99 9.8 s for batches of
    64 at concurrency 32, p50 1.2 s). Scheduling waits while an offloaded pass runs. A pass that
    fails is scored again request by request, so that only a request that fails gets an error."""

    def __init__(
        self, max_batch: int = MAX_BATCH, wait_ms: float = 2.0, offload_at: int = 256
    ) -> None:
        self.max_batch = max_batch
        self.wait = wait_ms / 1000
        self.offload_at = offload_at
        self.last_pass = 0
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pass")
        # per event loop (the ASGI test client runs one per thread), only while jobs wait or run
        self._waiting: dict[int, Waiting] = {}

    async def submit(
        self, bundle: Bundle, histories: list[list[ItemId]], k: int, exclude: bool
    ) -> list[Recommendation]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        waiting = self._waiting.setdefault(id(loop), Waiting())
        waiting.jobs.append(Job(bundle, histories, k, exclude, done))
        if waiting.next is None:
            self._schedule(loop, waiting, self.wait if self.last_pass > 1 else 0)
        elif isinstance(waiting.next, asyncio.TimerHandle) and (
            sum(len(job.histories) for job in waiting.jobs) >= self.last_pass
        ):  # as many as last time: no reason to wait longer
            waiting.next.cancel()
            self._schedule(loop, waiting, 0)
        return await done

    def _schedule(self, loop: asyncio.AbstractEventLoop, waiting: Waiting, delay: float) -> None:
        waiting.next = loop.call_later(delay, self._pass, loop, waiting)

    def _pass(self, loop: asyncio.AbstractEventLoop, waiting: Waiting) -> None:
        taken: list[Job] = []
        size = 0
        while waiting.jobs and size < self.max_batch:
            taken.append(waiting.jobs.popleft())
            size += len(taken[-1].histories)
        self.last_pass = size
        groups: dict[tuple[int, bool], list[Job]] = {}
        for job in taken:
            groups.setdefault((id(job.bundle), job.exclude), []).append(job)
        if size >= self.offload_at:
            running = loop.run_in_executor(
                self.worker, self._score_all, list(groups.values()), True
            )
            running.add_done_callback(lambda _: self._after_pass(loop, waiting))
            waiting.next = running
            return
        self._score_all(list(groups.values()), False)
        self._after_pass(loop, waiting)

    def _after_pass(self, loop: asyncio.AbstractEventLoop, waiting: Waiting) -> None:
        # The rest a moment later, so that requests still climbing through their awaits (one
        # per loop iteration) reach `submit` first.
        if waiting.jobs:
            self._schedule(loop, waiting, self.wait)
        else:
            waiting.next = None
            del self._waiting[id(loop)]

    @staticmethod
    def _score_all(groups: list[list[Job]], offloaded: bool) -> None:
        """Score each group (one bundle, one ``exclude``) and hand every job its answer (or the
        error) on its own loop."""

        def deliver(done: asyncio.Future, answer: object, error: BaseException | None) -> None:
            if offloaded:
                done.get_loop().call_soon_threadsafe(settle, done, answer, error)
            else:
                settle(done, answer, error)

        def score(jobs: list[Job]) -> None:
            first = jobs[0]
            histories = [h for job in jobs for h in job.histories]
            try:
                found = first.bundle.recommend(histories, max(job.k for job in jobs), first.exclude)
            except Exception as exc:
                if len(jobs) == 1:
                    deliver(first.done, None, exc)
                    return
                # which request broke the pass is unknown: scored alone, only it gets the error
                for job in jobs:
                    score([job])
                return
            start = 0
            for job in jobs:
                deliver(job.done, found[start : start + len(job.histories)], None)
                start += len(job.histories)

        for jobs in groups:
            score(jobs)


def settle(done: asyncio.Future, answer: object, error: BaseException | None) -> None:
    if done.done():  # a client that went away cancelled its future
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(answer)
