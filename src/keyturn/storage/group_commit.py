"""Group commit: short write steps of concurrent requests share one transaction and one commit.

A refresh is a handful of statements and a commit; the commit (and on PostgreSQL its wait for
the disk), the hop to a worker thread and the write lock cost more than the statements. Steps
that arrive while a group is being written queue for the next group, so under load every group
is as large as the backlog, and with one request in flight a group is that one request.

A step is a callable that takes the shared transaction. Whatever needs no database (checks
that may refuse the request, randomness, key derivation) belongs before `run`, in the caller:
a refusal then costs no hop to the writer thread, and nothing slow holds the write lock. A
step should return expected refusals as values; one that raises fails alone: its group is
rolled back and every step of it is written again in a transaction of its own. An outage
fails the whole group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio.to_thread

from keyturn.errors import ServiceUnavailableError

TransactionT = TypeVar("TransactionT")
ResultT = TypeVar("ResultT")

MAX_GROUP = 64


@dataclass(eq=False, slots=True)
class _Step:
    apply: Callable[[Any], Any]
    future: asyncio.Future[Any]
    failed: BaseException | None = None
    result: Any = None


class GroupCommit(Generic[TransactionT]):
    """Write steps from the event loop, grouped into transactions run on a worker thread."""

    def __init__(
        self,
        open_transaction: Callable[[], contextlib.AbstractContextManager[TransactionT]],
        *,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._open_transaction = open_transaction
        self._max_group = max_group
        self._waiting: list[_Step] = []
        self._writer: asyncio.Task[None] | None = None
        self.groups_written = 0

    async def run(self, apply: Callable[[TransactionT], ResultT]) -> ResultT:
        """Run `apply(transaction)` in a transaction shared with other steps; return what it
        returned once that transaction has committed. Raises what `apply` raised, or
        ServiceUnavailableError when the database is out of reach."""
        loop = asyncio.get_running_loop()
        step = _Step(apply, loop.create_future())
        self._waiting.append(step)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_waiting())
        # A caller that goes away does not take its step back: the step is written anyway, as
        # it would be if the caller had hung up a moment later.
        result: ResultT = await step.future
        return result

    async def _write_waiting(self) -> None:
        while self._waiting:
            group = self._waiting[: self._max_group]
            del self._waiting[: self._max_group]
            try:
                await anyio.to_thread.run_sync(self._write_group, group)
            except Exception as error:  # a fault of this module, not of a step
                for step in group:
                    step.failed = step.failed or error
            except BaseException:  # shutting down: nobody is left to answer
                for step in group + self._waiting:
                    step.future.cancel()
                raise
            self._settle(group)

    @staticmethod
    def _settle(group: list[_Step]) -> None:
        for step in group:
            if step.future.done():  # its caller went away
                continue
            if step.failed is not None:
                step.future.set_exception(step.failed)
            else:
                step.future.set_result(step.result)

    def _write_group(self, group: list[_Step]) -> None:
        """On a worker thread: apply the group's steps in one transaction."""
        try:
            self._apply(group)
        except ServiceUnavailableError as error:
            for step in group:
                step.failed = error
        except Exception as error:
            if len(group) == 1:
                group[0].failed = error
                return
            # The group was rolled back; each step again, alone, so one fault fails one step.
            for step in group:
                try:
                    self._apply([step])
                except Exception as alone:
                    step.failed = alone

    def _apply(self, steps: list[_Step]) -> None:
        with self._open_transaction() as transaction:
            results = [step.apply(transaction) for step in steps]
        for step, result in zip(steps, results, strict=True):
            step.result = result
        self.groups_written += 1
