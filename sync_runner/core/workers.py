"""A few threads that run calls handed to them, in order: the senders of a sync's batches.

`concurrent.futures` does this, but importing it imports `logging` (with `traceback` and `string`): 4 ms of every
sync process, for the part of it a sync uses. This is that part, with the same rules as its thread pool:

- a thread is started for a call when none is idle, up to `size` threads;
- calls run in the order they were handed over; a call not started yet can be cancelled, one running cannot;
- leaving the `with` block (or `close()`) waits for every call handed over and not cancelled to finish;
- what a call raised is raised again by `Job.result()`, in the thread that asks.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

_WAITING, _RUNNING, _DONE, _CANCELLED = "waiting", "running", "done", "cancelled"


class Job:
    """One call handed to `Workers`: whether it finished, and its value or what it raised."""

    __slots__ = ("_call", "_state", "_value", "_error", "_workers")

    def __init__(self, call: Callable[[], Any], workers: Workers) -> None:
        self._call, self._workers = call, workers
        self._state = _WAITING
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """Finished: run to its end, or cancelled before it started."""
        return self._state in (_DONE, _CANCELLED)

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def cancel(self) -> bool:
        """Never run it, if it has not started; whether it is cancelled now."""
        with self._workers._changed:
            if self._state == _WAITING:
                self._workers._queue.remove(self)
                self._state = _CANCELLED
                self._workers._changed.notify_all()
            return self._state == _CANCELLED

    def result(self) -> Any:
        """Its value once it finished (waiting for it), or what it raised; a cancelled job has none (None)."""
        with self._workers._changed:
            while not self.done():
                self._workers._changed.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Workers:
    """At most `size` threads named `<name>_<n>`, started as calls come."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = max(1, size), name
        self._changed = threading.Condition()  # any job's state, the queue, or closing
        self._queue: deque[Job] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closing = False

    def submit(self, call: Callable[..., Any], *args: Any) -> Job:
        job = Job((lambda: call(*args)) if args else call, self)
        thread = None
        with self._changed:
            if self._closing:
                raise RuntimeError("the workers were closed")
            self._queue.append(job)
            if self._idle < len(self._queue) and len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
            self._changed.notify_all()
        if thread is not None:  # started with the lock free: the new thread takes its job before this one goes on
            thread.start()
        return job

    def wait_any(self, jobs: Iterable[Job]) -> list[Job]:
        """The jobs among `jobs` that finished, waiting until one has (none when `jobs` is empty)."""
        jobs = list(jobs)
        with self._changed:
            while jobs:
                finished = [job for job in jobs if job.done()]
                if finished:
                    return finished
                self._changed.wait()
        return []

    def close(self) -> None:
        """Wait for every job handed over and not cancelled to finish, and for the threads to end."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while True:
            with self._changed:
                self._idle += 1
                while not self._queue and not self._closing:
                    self._changed.wait()
                self._idle -= 1
                if not self._queue:  # closing, and nothing left to run
                    return
                job = self._queue.popleft()
                job._state = _RUNNING
            try:
                value, error = job._call(), None
            except BaseException as exc:  # handed to whoever asks for the result
                value, error = None, exc
            with self._changed:
                job._value, job._error, job._state = value, error, _DONE
                self._changed.notify_all()
