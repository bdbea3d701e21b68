"""Typed RPC over a channel, with the semantics of the TypeScript RpcClient and RpcServer
(src/wire/rpc.ts, rpc-server.ts): calls with transaction ids, pushes both ways, timeouts sent
as deadlines, cancels, and error replies that fail the call with REMOTE_ERROR. Generated
clients and servers (`ftl-ipc gen --lang python`) subclass these."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .connection import Channel, OnFull, events
from .errors import IpcError, check_timeout
from .wire import (
    HEADER_BYTES,
    CallDescriptor,
    Message,
    MessageDescriptor,
    MessageTable,
    PLAIN_HEAD,
    Received,
    Request,
    decode_reply,
    decode_request,
    discard,
    encode_cancel,
    encode_error_reply,
    encode_message,
    encode_reply,
    with_deadline,
    with_trace,
)

T = TypeVar("T")
R = TypeVar("R")

#: Method names of the base classes: a message may not be named so (the generator refuses).
RESERVED_METHODS = frozenset(
    {"call", "send", "send_wait", "recv", "close", "channel", "serve", "dispatch", "reply", "reply_error"}
)


class _Peer:
    def __init__(self, channel: Channel, table: MessageTable) -> None:
        self.channel = channel
        self.table = table

    def send(self, d: MessageDescriptor[T], value: T, on_full: OnFull = "throw") -> bool:
        """A push, like Channel.send: False when dropped by `on_full`, BACKPRESSURE without it."""
        return self.channel.send(encode_message(d, value), on_full)

    async def send_wait(self, d: MessageDescriptor[T], value: T, timeout: float | None = None) -> None:
        """A push that waits while the peer's queue is full."""
        await self.channel.send_wait(encode_message(d, value), timeout)

    def close(self) -> None:
        self.channel.close()


@dataclass(slots=True)
class _Pending:
    d: CallDescriptor[Any, Any]
    future: asyncio.Future[Any]


class RpcClient(_Peer):
    """The client side of a protocol. It owns receiving on its channel: replies go to the calls
    that wait for them, pushes to `recv()`. Calls are windowed: at most half this end's queue
    `capacity` are in flight, so replies never meet a full queue because of this client; a call
    that timed out or was cancelled keeps its room until its (late) reply is in."""

    def __init__(self, channel: Channel, events_table: MessageTable, timeout: float | None = None) -> None:
        super().__init__(channel, events_table)
        self.timeout = check_timeout("RpcClient", timeout)
        self._next_txid = 1
        self._pending: dict[int, _Pending] = {}
        self._window = asyncio.Semaphore(max(1, channel.limits.capacity // 2))
        self._pushes: asyncio.Queue[Received[Any] | IpcError] = asyncio.Queue(channel.limits.capacity)
        self._reader: asyncio.Task[None] | None = None
        self._ended: IpcError | None = None

    def _start_reader(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for m in self.channel:
                self._receive(m)
            self._end(IpcError("PEER_CLOSED", "the server closed the channel"))
        except IpcError as e:
            self._end(e)

    def _receive(self, m: Message) -> None:
        txid = int.from_bytes(m.data[4:8], "little") if len(m.data) >= 8 else 0
        if txid != 0 and len(m.data) >= 8 and m.data[3] & 0x01:
            pending = self._pending.pop(txid, None)
            if pending is None:
                discard(m)
                raise IpcError("INVALID_MESSAGE", f"(message): a reply to transaction {txid}, which is not in flight")
            self._window.release()
            try:
                result = decode_reply(pending.d, m)
            except IpcError as e:
                discard(m)
                if not pending.future.done():
                    pending.future.set_exception(e)
                raise
            if not pending.future.done():  # else the call timed out or was cancelled: dropped
                pending.future.set_result(result)
            return
        try:
            received = self.table.decode(m)
        except IpcError:
            discard(m)
            raise
        self._pushes.put_nowait(received) if not self._pushes.full() else self._hold(received)

    def _hold(self, received: Received[Any]) -> None:
        # More unread pushes than this end's capacity: the server outran a reader that does
        # not read them, and the replies behind them are stuck, as in TypeScript.
        raise IpcError("BACKPRESSURE", f"{self._pushes.qsize()} pushes wait unread; {received.kind} has no room")

    def _end(self, error: IpcError) -> None:
        self._ended = error
        if error.code not in ("PEER_CLOSED", "CLOSED"):
            self.channel.close()
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(error)
        self._pending.clear()
        if self._pushes.full():
            self._pushes.get_nowait()
        self._pushes.put_nowait(error)

    async def call(
        self, d: CallDescriptor[Any, R], value: Any, timeout: float | None = None, traceparent: str | None = None
    ) -> R:
        """Calls and waits for the reply; TIMEOUT after `timeout` seconds (the window wait
        included), REMOTE_ERROR for an error reply. Cancelling the task sends a cancel.
        `traceparent` (a W3C header value, e.g. a handler's `ctx.traceparent`) goes with the
        request as its trace context."""
        timeout = self.timeout if timeout is None else check_timeout(d.name, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        message = encode_message(d, value)  # invalid arguments fail before anything waits
        if self._ended is not None:
            raise self._ended
        self._start_reader()
        try:
            await asyncio.wait_for(self._window.acquire(), timeout)
        except TimeoutError:
            raise IpcError("TIMEOUT", f"{d.name} found no room in the call window within {timeout} s") from None
        txid = self._next_txid
        self._next_txid = self._next_txid % 0xFFFFFFFF + 1
        message = Message(message.type, message.data[:4] + txid.to_bytes(4, "little") + message.data[8:], message.handles)
        if deadline is not None:
            message = with_deadline(message, (deadline - time.monotonic()) * 1000)
        if traceparent is not None:
            message = with_trace(message, traceparent)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            await self.channel.send_wait(message, None if deadline is None else max(0.0, deadline - time.monotonic()))
        except BaseException:
            self._window.release()
            raise
        self._pending[txid] = _Pending(d, future)
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            result = await asyncio.wait_for(asyncio.shield(future), left)
        except TimeoutError:
            self._cancel(d, txid)
            raise IpcError("TIMEOUT", f"{d.name} had no reply within {timeout} s") from None
        except asyncio.CancelledError:
            self._cancel(d, txid)
            raise
        if isinstance(result, IpcError):
            raise result
        return result

    def _cancel(self, d: CallDescriptor[Any, Any], txid: int) -> None:
        if txid in self._pending and not self.channel.closed:
            try:
                self.channel.send(encode_cancel(d.id, txid), on_full="drop")
            except IpcError:
                pass  # the server is gone: nothing to cancel

    async def recv(self) -> Received[Any]:
        """The next push from the server; PEER_CLOSED once it closed and all were read."""
        self._start_reader()
        item = await self._pushes.get()
        if isinstance(item, IpcError):
            self._pushes.put_nowait(item)
            raise item
        return item

    def close(self) -> None:
        self.channel.close()
        if self._reader is not None:
            self._reader.cancel()


@dataclass(slots=True)
class CallContext:
    """What a call's handler gets beside the request: its transaction id and, when the client
    gave a timeout, the deadline (`time.time()` seconds), and the caller's W3C trace context
    (`traceparent`) when it sent one: pass it to calls the handler makes to continue the trace.
    A cancel from the client cancels the handler's task (CancelledError inside it)."""

    txid: int
    deadline: float | None
    traceparent: str | None = None


class RpcServer(_Peer):
    """The server side of a protocol: a dispatch loop over handlers, replies and pushes."""

    async def recv(self) -> Received[Any]:
        """The next request or push, decoded (cancels are skipped: code serving this way
        answers every call); an invalid one raises INVALID_MESSAGE with its handles closed."""
        while True:
            m = await self.channel.recv()
            try:
                request = decode_request(self.table, m)
            except IpcError:
                discard(m)
                raise
            if request.received is not None:
                return request.received

    def reply(self, d: CallDescriptor[Any, R], txid: int, value: R, on_full: OnFull = "throw") -> bool:
        return self.channel.send(encode_reply(d, txid, value), on_full)

    def reply_error(self, d: CallDescriptor[Any, Any], txid: int, error: BaseException, on_full: OnFull = "throw") -> bool:
        return self.channel.send(encode_error_reply(d, txid, error), on_full)

    async def dispatch(
        self,
        handlers: object,
        concurrency: int | None = None,
        on_invalid: Literal["close", "ignore"] = "close",
        on_error: Callable[[BaseException, str], None] | None = None,
        reply_on_full: OnFull = "close",
        stop_on_error: bool = False,
        reply_stack: bool = False,
    ) -> None:
        """Receives and dispatches until the client closes and the handlers have finished, or a
        handler fails with `stop_on_error` or an `on_error` raises (raises that). Either way the
        channel is closed after. A failed handler's call is answered with an error reply (its
        text is the exception's, or with `reply_stack` its traceback), `{channel, error, kind,
        action}` is published on `rpc:error`, `on_error(error, kind)` is called, and serving goes
        on. Handlers run at most `concurrency` at once (default: the queue's capacity); requests
        beyond that wait, up to as many again, then this side stops reading."""
        limit = self.channel.limits.capacity if concurrency is None else concurrency
        if type(limit) is not int or limit < 1:
            raise IpcError("INVALID_ARGUMENT", f"concurrency must be a positive integer, got {concurrency!r}")
        d = _Dispatch(self, handlers, limit, reply_on_full, on_error, stop_on_error, reply_stack)
        channel, table = self.channel, self.table
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pumping = False

        def end() -> None:
            if not ended.done():
                ended.set_result(None)

        def pump() -> None:
            # Runs in the transport's callbacks as messages arrive, and when a slot frees.
            nonlocal pumping
            if pumping:
                return  # the pump below this call goes on
            pumping = True
            try:
                while d.failure is None and len(d.held) < limit:
                    try:
                        m = channel.try_recv()
                    except IpcError:  # PEER_CLOSED after the last message, or CLOSED
                        return end()
                    if m is None:
                        return None
                    try:
                        request = decode_request(table, m)
                    except IpcError as e:
                        discard(m)
                        events.publish("rpc:invalid", {"channel": channel, "error": e, "action": on_invalid})
                        if on_invalid == "close":
                            return end()
                        continue
                    d.offer(request)
                if d.failure is not None:
                    end()
            finally:
                pumping = False
            return None

        fixed = table.fixed

        def take(type_id: int, buf: bytes | bytearray, start: int, length: int) -> bool:
            # The channel's sink: a plain request (no control flags), when it would start at
            # once anyway, is served here without a queue entry, a Request or a job; one of a
            # fixed-size message also without a Message, a Received or a copy of its bytes.
            if d.held or d.active >= limit or d.failure is not None:
                return False
            entry = fixed.get(type_id)
            if entry is not None and length == entry[0].fixed_size:
                desc = entry[0]
                head, txid, value = desc.decode_fixed(buf, start)
                if head != PLAIN_HEAD or (txid != 0) is not entry[1]:
                    return False  # the usual path names the problem
            else:
                general = table.get(type_id)
                if general is None or length < HEADER_BYTES or buf[start + 3] != 0:
                    return False
                try:
                    received = table.decode(Message(type_id, bytes(buf[start : start + length])))
                except IpcError:
                    return False  # the usual path decodes it again, and reports it
                desc, txid, value = general, received.txid, received.value
            d.run(desc, txid, value, None, None)
            return True

        channel.on_readable = pump
        d.on_room = pump
        channel.sink = take
        try:
            pump()
            await ended
            await d.drain()
        finally:
            channel.on_readable = None
            channel.sink = None
            d.cancel_all()
            self.close()
        if d.failure is not None:
            raise d.failure


@dataclass(slots=True)
class _Job:
    request: Request
    received_at: float
    aborted: bool = False


class _Dispatch:
    """One dispatch(): runs up to `limit` handlers, answers each call as its handler ends.
    A synchronous handler is answered at once, without a task."""

    def __init__(
        self,
        server: RpcServer,
        handlers: object,
        limit: int,
        reply_on_full: OnFull,
        on_error: Callable[[BaseException, str], None] | None,
        stop_on_error: bool,
        reply_stack: bool,
    ) -> None:
        self.server = server
        self.handlers = handlers
        self.bound: dict[str, Callable[..., Any]] = {}
        self.limit = limit
        self.reply_on_full = reply_on_full
        self.on_error = on_error
        self.stop_on_error = stop_on_error
        self.reply_stack = reply_stack
        self.active = 0
        self.held: collections.deque[_Job] = collections.deque()
        self.waiting: dict[int, _Job] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.others: set[asyncio.Task[None]] = set()
        self.failure: BaseException | None = None
        self._room: asyncio.Future[None] | None = None
        self.on_room: Callable[[], None] | None = None
        self._idle: asyncio.Future[None] | None = None

    def offer(self, request: Request) -> None:
        if request.cancel:
            job = self.waiting.get(request.cancel)
            if job is not None:
                job.aborted = True  # answered ABORTED when its turn comes, without running
            task = self.tasks.get(request.cancel)
            if task is not None:
                task.cancel()
            return
        assert request.received is not None
        job = _Job(request, time.time())
        if self.active < self.limit:
            self.start(job)
        else:
            self.held.append(job)
            if request.received.txid:
                self.waiting[request.received.txid] = job

    def start(self, job: _Job) -> None:
        self.active += 1
        request = job.request
        received, d = request.received, request.descriptor
        assert received is not None and d is not None
        if job.aborted:
            return self.finish(job, None, IpcError("ABORTED", f"{d.name} was cancelled"), True)
        timeout_ms = request.timeout_ms
        deadline = None if timeout_ms is None else job.received_at + timeout_ms / 1000
        return self.run(d, received.txid, received.value, deadline, job)

    def run(
        self, d: MessageDescriptor[Any], txid: int, value: Any, deadline: float | None, job: _Job | None
    ) -> None:
        """Runs the handler of one request; a call (txid not 0) is answered when it ends, a
        synchronous handler's at once. `job` is None on the fast path, where the request was
        never held: it is made only if the handler is async."""
        try:
            handler = self.bound.get(d.kind)
            if handler is None:
                handler = self.bound[d.kind] = getattr(self.handlers, d.kind)
            trace = job.request.traceparent if job else None
            result = handler(value, CallContext(txid, deadline, trace)) if txid else handler(value)
        except Exception as e:
            return self.finish(job, None, e, False) if job else self.answer(d, txid, None, e, False)
        if not hasattr(result, "__await__"):
            return self.finish(job, result, None, False) if job else self.answer(d, txid, result, None, False)
        if job is None:
            self.active += 1
            job = _Job(Request(0, Received(d.kind, txid, value), None, d), time.time())
        task = asyncio.get_running_loop().create_task(self.wait(job, result))
        if txid:
            self.tasks[txid] = task
        else:
            self.others.add(task)
            task.add_done_callback(self.others.discard)
        return None

    async def wait(self, job: _Job, result: Any) -> None:
        try:
            value = await result
        except asyncio.CancelledError:
            d = job.request.descriptor
            assert d is not None
            return self.finish(job, None, IpcError("ABORTED", f"{d.name} was cancelled"), True)
        except Exception as e:
            return self.finish(job, None, e, False)
        return self.finish(job, value, None, False)

    def finish(self, job: _Job, value: Any, error: BaseException | None, aborted: bool) -> None:
        self.active -= 1
        received, d = job.request.received, job.request.descriptor
        assert received is not None and d is not None
        self.tasks.pop(received.txid, None)
        self.answer(d, received.txid, value, error, aborted)
        while self.active < self.limit and self.held:
            nxt = self.held.popleft()
            if nxt.request.received is not None:
                self.waiting.pop(nxt.request.received.txid, None)
            self.start(nxt)
        self._wake()
        if self.on_room is not None:
            self.on_room()

    def answer(self, d: MessageDescriptor[Any], txid: int, value: Any, error: BaseException | None, aborted: bool) -> None:
        """Replies to a call (a push has no reply); a failure is reported, and stops serving only
        with `stop_on_error` (or an `on_error` that raises)."""
        failed = error is not None and not aborted
        if txid:  # a call: its descriptor is a CallDescriptor
            fast = d.encode_reply_fixed  # type: ignore[attr-defined]
            data = fast(txid, value) if fast is not None and error is None else None
            try:
                if data is not None:
                    self.server.channel.send_data(d.reply_id, data, self.reply_on_full)
                else:
                    try:
                        reply = (
                            encode_error_reply(d, txid, error, self.reply_stack)
                            if error
                            else encode_reply(d, txid, value)
                        )
                    except IpcError as e:
                        failed, error = True, e
                        reply = encode_error_reply(d, txid, e, self.reply_stack)
                    self.server.channel.send(reply, self.reply_on_full)
            except IpcError as e:
                # A client that has gone away is not a failure of this server.
                if e.code not in ("PEER_CLOSED", "CLOSED"):
                    failed, error = True, e
        if failed and error is not None:
            stop = self.stop_on_error
            channel = self.server.channel
            events.publish("rpc:error", {"channel": channel, "error": error, "kind": d.kind, "action": "stop" if stop else "continue"})
            if self.on_error is not None:
                try:
                    self.on_error(error, d.kind)
                except Exception as e:  # serving stops with what it raised
                    stop, error = True, e
            if stop:
                self.failure = self.failure or error
                self.server.close()

    def _wake(self) -> None:
        for f in (self._room, self._idle):
            if f is not None and not f.done() and (f is self._room or self.active == 0):
                f.set_result(None)

    async def room(self) -> None:
        self._room = asyncio.get_running_loop().create_future()
        await self._room

    async def drain(self) -> None:
        while self.held and self.failure is None:
            await self.room()
        if self.active > 0 and self.failure is None:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def cancel_all(self) -> None:
        for t in [*self.tasks.values(), *self.others]:
            t.cancel()
