"""Tests for editor.compute_thread: every call on one thread, in the caller's context, results and errors returned."""

from __future__ import annotations

import contextvars
import threading

import pytest

from editor.compute_thread import ComputeThread

REQUEST = contextvars.ContextVar("request", default=None)


def test_calls_from_many_threads_run_on_one_thread_in_their_callers_context():
    compute = ComputeThread()
    seen: list[tuple[threading.Thread, str | None]] = []

    def caller(name: str) -> None:
        REQUEST.set(name)
        seen.append(compute.run(lambda: (threading.current_thread(), REQUEST.get())))

    callers = [threading.Thread(target=caller, args=(f"request {i}",)) for i in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert len({thread for thread, _ in seen}) == 1
    assert seen[0][0] not in callers and seen[0][0] is not threading.current_thread()
    assert sorted(request for _, request in seen) == [f"request {i}" for i in range(4)]
    compute.shutdown()


def test_errors_reach_the_caller_and_a_nested_call_runs_in_place():
    compute = ComputeThread()

    def fails() -> None:
        raise ValueError("bad clip")

    with pytest.raises(ValueError, match="bad clip"):
        compute.run(fails)
    # The thread survives an error, and a call made from the compute thread does not wait on itself.
    assert compute.run(lambda: compute.run(lambda x: x + 1, 1)) == 2
    compute.shutdown()
