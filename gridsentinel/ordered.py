"""One task behind a bounded queue: what the cases stage uses to overlap a batch's slow
completion (Kafka produce acks) with taking the next batch, while finishing batches
strictly in submission order."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class TaskStopped(Exception):
    """The task ended (told to stop, or failed) before everything submitted was done."""


class OrderedQueue(Generic[T]):
    """Items are handled by one task (:meth:`_run`, in subclasses), in the order they were put.

    :meth:`_put` waits while ``max_pending`` items are queued (backpressure on the caller) and raises
    :attr:`stopped` (after the task's own error, if it failed) once the task has ended.
    """

    stopped: type[TaskStopped] = TaskStopped

    def __init__(self, max_pending: int) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None

    def _running(self) -> asyncio.Task[None]:
        """The task, started on first use; raises when it has ended."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        elif self._task.done():
            self._task.result()  # raises the task's error, if any
            raise self.stopped()
        return self._task

    async def _put(self, item: T) -> None:
        task = self._running()
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # the task stopped: do not take more
            put.cancel()
            task.result()
            raise self.stopped()

    async def drain(self) -> None:
        """Return once every item put is done (raises the task's error, or :attr:`stopped`, if it ended)."""
        if self._task is None:
            return
        join = asyncio.ensure_future(self._queue.join())
        await asyncio.wait({join, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not join.done():
            join.cancel()
            self._task.result()
            raise self.stopped()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        raise NotImplementedError
