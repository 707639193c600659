"""Every operation of the managers is written once, as steps that do no I/O themselves.

A step function is a generator: where it needs I/O (an L2 call, a loader) it yields `(fn, args)` and is sent
the result, or thrown the exception. `run` drives it with plain calls (CacheManager), `arun` awaits what the
calls return (AsyncCacheManager). So the sync and async managers share each operation's logic — checks,
counting, the circuit breaker, promotion, repair — and differ only in how a call is made.

    steps:  plan ──yield (l2.get, (key,))──> ... ──send(data)──> finish ──return value
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generator, Tuple

__all__ = ["Steps", "run", "arun"]

Steps = Generator[Tuple[Callable[..., Any], Tuple[Any, ...]], Any, Any]


def run(steps: Steps) -> Any:
    """Drive `steps` to their result, calling each requested function here and now."""
    try:
        request = next(steps)
        while True:
            fn, args = request
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the steps (which count it, or re-raise it)
                request = steps.throw(exc)
            else:
                request = steps.send(result)
    except StopIteration as done:
        return done.value


async def arun(steps: Steps) -> Any:
    """Drive `steps` on the running loop, awaiting what each requested call returns (when awaitable)."""
    resume, value = steps.send, None
    while True:
        try:
            fn, args = resume(value)
        except StopIteration as done:
            return done.value
        try:
            value = fn(*args)
            if inspect.isawaitable(value):
                value = await value
            resume = steps.send
        except BaseException as exc:  # (cancellation included: the steps answer a half-open probe)
            value, resume = exc, steps.throw
