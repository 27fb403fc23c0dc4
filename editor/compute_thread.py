"""One thread for all of a server's model work.

PyTorch's CPU kernels run on OpenMP, and GNU OpenMP keeps a team of threads for every thread that has run a parallel
region. Once a process holds more such threads than it has cores, every team stops spinning between regions and
sleeps instead, and a small model, whose forward pass is thousands of short regions, slows down by about half: on 2
cores a demo edit took 1.3 s on the thread that loaded the model and 1.9-2.1 s on a second thread. A web server runs
each request on whichever worker thread is free, so the model is loaded and run on this one thread instead.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ComputeThread:
    """Runs calls one at a time on a single long-lived thread; the callers wait for their result."""

    def __init__(self, name: str = "compute") -> None:
        self._thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=self._remember)

    def _remember(self) -> None:
        self._thread = threading.current_thread()

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the compute thread; returns what it returns and raises what it raises.

        It runs in a copy of the caller's context, so request-scoped context variables (a web framework's progress
        tracker, for one) reach it. A call from the compute thread itself runs in place rather than wait on itself.
        """
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        context = contextvars.copy_context()
        return self._executor.submit(context.run, fn, *args, **kwargs).result()

    def shutdown(self) -> None:
        """Let the thread finish what it runs and end."""
        self._executor.shutdown(wait=True)
