"""The sync's sender threads (sync_runner/core/workers.py): the rules concurrent.futures' thread pool keeps, checked
on real threads."""

from __future__ import annotations

import threading
import time

import pytest

from sync_runner.core.workers import Workers


def test_calls_run_in_order_on_at_most_size_threads_started_as_needed():
    running, most, order, names = [0], [0], [], set()
    lock = threading.Lock()

    def call(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            order.append(i)
            names.add(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i * i

    with Workers(3, "send") as workers:
        one = workers.submit(call, 0)
        assert one.result() == 0 and len(workers._threads) == 1  # one call, one thread
        jobs = [workers.submit(call, i) for i in range(1, 13)]
        assert [job.result() for job in jobs] == [i * i for i in range(1, 13)]
    assert most[0] == 3 and order == list(range(13))
    assert names <= {"send_0", "send_1", "send_2"}


def test_what_a_call_raised_is_raised_by_its_result():
    with Workers(2, "w") as workers:
        job = workers.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            job.result()
        assert job.done() and not job.cancelled()


def test_a_job_not_started_can_be_cancelled_and_never_runs_one_running_cannot():
    release, started, ran = threading.Event(), threading.Event(), []

    def blocking() -> str:
        started.set()
        release.wait(5)
        return "first"

    with Workers(1, "w") as workers:
        first = workers.submit(blocking)
        second = workers.submit(ran.append, "second")
        assert started.wait(5)
        assert not first.cancel() and second.cancel()
        assert second.cancelled() and second.done() and second.result() is None
        release.set()
        assert first.result() == "first"
    assert ran == []


def test_wait_any_returns_the_finished_jobs_once_one_finished():
    gate = threading.Event()
    with Workers(2, "w") as workers:
        slow = workers.submit(lambda: gate.wait(5))
        quick = workers.submit(lambda: "quick")
        began = time.monotonic()
        finished = workers.wait_any([slow, quick])
        assert finished == [quick] and time.monotonic() - began < 2
        gate.set()
        assert workers.wait_any([slow]) == [slow]
        assert workers.wait_any([]) == []


def test_closing_waits_for_every_job_handed_over():
    done = []
    workers = Workers(2, "w")
    for i in range(6):
        workers.submit(lambda i=i: (time.sleep(0.01), done.append(i)))
    workers.close()
    assert sorted(done) == list(range(6))
    assert not any(t.is_alive() for t in workers._threads)
    with pytest.raises(RuntimeError):
        workers.submit(print)
