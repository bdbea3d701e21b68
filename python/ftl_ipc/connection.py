"""The socket transport of docs/socket-transport.md (protocol version 2) over asyncio: the
handshake with an optional shared secret, channels multiplexed on one connection, credits for
messages and bytes, heartbeats, and handles moved inside messages. Everything the peer sends is
checked before it is used, frame lengths before anything is waited for or allocated."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import os
import secrets as _secrets
import socket as _socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .errors import IpcError, check_timeout
from .wire import ChannelHandle, Handle, Message, PipeConsumer, PipeProducer, discard

FRAME_HEADER: Final = struct.Struct("<IBBHII")
HEADER_BYTES: Final = 16
# Output written out at once while a batch of frames is being read (see Connection.send).
EAGER_OUT_BYTES: Final = 1024
DESCRIPTOR: Final = struct.Struct("<IIIIHHIII8I")
DESCRIPTOR_BYTES: Final = 64
NO_COUNTERS: Final = (0,) * 8
HELLO: Final = struct.Struct("<IHH32sIIIHHI")
HELLO_BYTES: Final = 60
AUTH_BYTES: Final = 32
MAX_ERROR_BYTES: Final = 1024
MAGIC: Final = 0x316C7466
VERSION: Final = 2
HELLO_FLAG_AUTH: Final = 1
AUTH_LABEL: Final = b"ftl-ipc socket auth v1"
FRAME_HELLO, FRAME_AUTH, FRAME_MSG, FRAME_CREDIT, FRAME_CLOSE, FRAME_PING, FRAME_ERROR = range(1, 8)
KIND_CHANNEL, KIND_PIPE_PRODUCER, KIND_PIPE_CONSUMER = 0, 1, 2
ERROR_KINDS: Final = ("PROTOCOL_ERROR", "AUTH_FAILED", "TIMEOUT")
MIN_PEER_HEARTBEAT_MS: Final = 100
MAX_PEER_HEARTBEAT_MS: Final = 3_600_000
#: What one queued message costs besides its data, for the peer budget (as in TypeScript).
MESSAGE_COST: Final = 64
#: The type of the first message spawnProcess sends a child: the JSON list of channel names.
BOOTSTRAP_TYPE: Final = 0x4654_4C00
FD_ENV: Final = "FTL_IPC_FD"

OnFull = Literal["throw", "drop", "close"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one receive queue, as `Channel.pair` options in TypeScript."""

    capacity: int
    capacity_bytes: int
    max_message_bytes: int
    max_handles: int


def resolve_limits(
    capacity: int = 1024,
    capacity_bytes: int = 1 << 20,
    max_message_bytes: int | None = None,
    max_handles: int = 64,
) -> Limits:
    """A root channel's limits with the socket defaults (1024 messages, 1 MiB, 64 KiB, 64)."""
    mmb = min(64 * 1024, capacity_bytes) if max_message_bytes is None else max_message_bytes
    for name, v, high in (
        ("capacity", capacity, 2**32 - 1),
        ("capacity_bytes", capacity_bytes, 2**32 - 1),
        ("max_message_bytes", mmb, capacity_bytes),
        ("max_handles", max_handles, 0xFFFF),
    ):
        low = 0 if name == "max_handles" else 1
        if type(v) is not int or not low <= v <= high:
            raise IpcError("INVALID_ARGUMENT", f"{name} must be an integer in {low}..{high}, got {v!r}")
    return Limits(capacity, capacity_bytes, mmb, max_handles)


#: The largest limits a peer may announce for a channel it opens here.
DEFAULT_MAX_LIMITS: Final = Limits(1 << 20, 64 << 20, 16 << 20, 1024)


@dataclass(slots=True)
class Stats:
    """As `ch.stats` in TypeScript (docs/channel.md, Statistics)."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    backpressured: int = 0
    discarded: int = 0
    queued_messages: int = 0
    queued_bytes: int = 0
    high_water_mark: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Options:
    """Connection options (docs/socket-transport.md), with the same defaults."""

    secret: bytes | None = None
    limits: Limits = field(default_factory=resolve_limits)
    heartbeat_ms: int = 5000
    heartbeat_timeout_ms: int | None = None
    handshake_timeout_ms: int = 10_000
    max_limits: Limits = DEFAULT_MAX_LIMITS
    max_channels: int = 4096
    max_peer_bytes: int = 1 << 30
    max_output_bytes: int = 1 << 20


def make_options(
    secret: str | bytes | None = None,
    capacity: int = 1024,
    capacity_bytes: int = 1 << 20,
    max_message_bytes: int | None = None,
    max_handles: int = 64,
    **rest: Any,
) -> Options:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if secret is not None and not isinstance(secret, bytes):
        raise IpcError("INVALID_ARGUMENT", f"secret must be a str or bytes, got a {type(secret).__name__}")
    try:
        return Options(
            secret=secret,
            limits=resolve_limits(capacity, capacity_bytes, max_message_bytes, max_handles),
            **rest,
        )
    except TypeError as e:
        raise IpcError("INVALID_ARGUMENT", f"unknown connection option: {e}") from e


class Books:
    """The credit books of one channel id, alike for a Channel and a Bridge: what this side may
    still send, what it granted the far side and has not seen spent, and the credits due at the
    next flush (one CREDIT per id per turn of the event loop)."""

    def _open_books(
        self,
        conn: Connection,
        channel_id: int,
        send_limits: Limits,
        recv_limits: Limits,
        credits: tuple[int, int],
        grant: tuple[int, int],
    ) -> None:
        self._conn = conn
        self.id = channel_id
        self.send_limits = send_limits
        #: The limits of this id's receive side.
        self.limits = recv_limits
        self._credit_messages, self._credit_bytes = credits
        # What the far side may still send here: the credits granted and not yet spent.
        self._grant_messages, self._grant_bytes = grant
        self._due_messages = 0
        self._due_bytes = 0
        #: MSGs accepted before this side's CLOSE, which tells the far side (modulo 2^32).
        self._accepted = 0
        self.sent_close = False
        self.got_close = False
        self.announced_bytes = 0

    def _return_credit(self, messages: int, n: int) -> None:
        if self.sent_close:
            return
        due = self._due_messages + self._due_bytes > 0
        self._due_messages += messages
        self._due_bytes += n
        if not due:
            self._conn.credit_due(self)

    def take_due(self) -> tuple[int, int]:
        """The credits to grant now (one CREDIT per id per turn of the event loop)."""
        m, b = self._due_messages, self._due_bytes
        self._due_messages = self._due_bytes = 0
        self._grant_messages += m
        self._grant_bytes += b
        return m, b

    def refuse(self, data_bytes: int, handle_count: int) -> str | None:
        lim = self.limits
        if data_bytes > lim.max_message_bytes:
            return f"message of {data_bytes} bytes on channel {self.id} exceeds its maxMessageBytes {lim.max_message_bytes}"
        if handle_count > lim.max_handles:
            return f"message with {handle_count} handles on channel {self.id} exceeds its maxHandles {lim.max_handles}"
        if self._grant_messages < 1 or self._grant_bytes < data_bytes:
            return (
                f"message of {data_bytes} bytes on channel {self.id} exceeds the credits granted "
                f"({self._grant_messages} messages, {self._grant_bytes} bytes)"
            )
        return None

    def refuse_credit(self, messages: int, n: int) -> str | None:
        lim = self.send_limits
        if self._credit_messages + messages > lim.capacity or self._credit_bytes + n > lim.capacity_bytes:
            return (
                f"credit of {messages} messages and {n} bytes on channel {self.id} would exceed the queue "
                f"it stands for ({lim.capacity} messages, {lim.capacity_bytes} bytes)"
            )
        return None


class Channel(ChannelHandle, Books):
    """One end of a channel on a socket connection. `send` is synchronous and raises
    BACKPRESSURE when the peer's queue (the credits it granted) is full; `recv` waits."""

    def __init__(
        self,
        conn: Connection,
        channel_id: int,
        send_limits: Limits,
        recv_limits: Limits,
        credits: tuple[int, int],
        origin: int = 0,
    ) -> None:
        self._open_books(
            conn, channel_id, send_limits, recv_limits, credits, (recv_limits.capacity, recv_limits.capacity_bytes)
        )
        #: The origin token of the descriptor that opened this id (0: none), passed on when
        #: this end moves on, so the process it leads to can recognise it.
        self.origin = origin
        self._queue: collections.deque[Message] = collections.deque()
        self._stats = Stats()
        self._sent_here = 0
        self.peer_closed = False
        #: Sent on to another peer: a Bridge owns this end now, its user may not use it.
        self.moved = False
        self._readers: collections.deque[asyncio.Future[None]] = collections.deque()
        self._writers: list[asyncio.Future[None]] = []
        self._send_lock = asyncio.Lock()
        #: Called (synchronously) when a message arrives, the peer closes or this end closes:
        #: RpcServer.dispatch serves from it without a wake-up per message.
        self.on_readable: Callable[[], None] | None = None
        #: Offered each message without handles that arrives while the queue is empty, as
        #: (type, buffer, start, length), before any Message or copy is made: True means it
        #: was taken, as by try_recv (RpcServer.dispatch's fast path); False queues it as usual.
        self.sink: Callable[[int, bytes | bytearray, int, int], bool] | None = None
        #: Called when the peer returns credits (a Bridge grants the room on).
        self.on_credit: Callable[[], None] | None = None
        #: False for an end of open_channel whose far end was not sent yet: the peer does not
        #: know the id, so nothing may go out on it (not even CLOSE).
        self.announced = True

    def __repr__(self) -> str:
        return f"<Channel {self.id} on {self._conn.remote}>"

    # ---- sending ------------------------------------------------------------------------------

    def _closed(self) -> IpcError:
        if self.moved:
            return IpcError("CLOSED", f"channel {self.id} was sent away as a handle and can no longer be used")
        return IpcError("CLOSED", f"channel {self.id} is closed")

    def send(self, message: Message, on_full: OnFull = "throw") -> bool:
        """True when the message is in the peer's queue, False when `on_full` dropped it."""
        if self.sent_close or self.moved:
            raise self._closed()
        if on_full not in ("throw", "drop", "close"):
            raise IpcError("INVALID_ARGUMENT", f"on_full must be 'throw', 'drop' or 'close', got {on_full!r}")
        if not isinstance(message, Message) or type(message.type) is not int or not 0 <= message.type < 2**32:
            raise IpcError("INVALID_ARGUMENT", f"expected a Message with a uint32 type, got {message!r}")
        data = message.data
        if not isinstance(data, bytes | bytearray | memoryview):
            raise IpcError("INVALID_ARGUMENT", f"message data must be bytes, got a {type(data).__name__}")
        handles = message.handles
        if len(handles) > self.send_limits.max_handles:
            raise IpcError("TOO_MANY_HANDLES", f"{len(handles)} handles exceed maxHandles {self.send_limits.max_handles}")
        if handles:
            self._conn.check_movable(self, handles)
        return self.send_data(message.type, data, on_full, handles)

    def send_data(
        self, msg_type: int, data: bytes | bytearray | memoryview, on_full: OnFull = "throw", handles: Sequence[Handle] = ()
    ) -> bool:
        """`send` of a message this side built itself (a type, data, checked handles): the
        checks of the channel's state, size and credits without those of the arguments."""
        if self.sent_close or self.moved:
            raise self._closed()
        n = len(data)
        if n > self.send_limits.max_message_bytes:
            raise IpcError("TOO_LARGE", f"message of {n} bytes exceeds maxMessageBytes {self.send_limits.max_message_bytes}")
        if self.peer_closed:
            raise IpcError("PEER_CLOSED", f"the peer of channel {self.id} has closed")
        if self._credit_messages < 1 or self._credit_bytes < n or self._conn.output_full():
            self._stats.backpressured += 1
            if on_full == "throw":
                raise IpcError(
                    "BACKPRESSURE",
                    f"the peer's queue on channel {self.id} is full ({self._credit_messages} messages, "
                    f"{self._credit_bytes} bytes of credit left for a message of {n} bytes)",
                )
            self._stats.dropped += 1
            if on_full == "close":
                self.close()
            return False
        self._credit_messages -= 1
        self._credit_bytes -= n
        self._conn.write_message(self.id, msg_type, data, handles)
        self._stats.sent += 1
        self._stats.sent_bytes += n
        self._sent_here += 1
        return True

    async def writable(self, n_bytes: int = 0, timeout: float | None = None) -> None:
        """Waits until a send of a message of `n_bytes` could succeed (or the peer closed)."""
        timeout = check_timeout(f"writable on channel {self.id}", timeout)
        while not self._has_room(n_bytes):
            if self.sent_close or self.moved:
                raise self._closed()
            fut = asyncio.get_running_loop().create_future()
            self._writers.append(fut)
            if self._conn.output_full():
                # No credit may come to wake it: the flush that writes the output out does.
                self._conn.wait_output(self)
            if timeout is None:
                await fut
            else:
                try:
                    await asyncio.wait_for(fut, timeout)
                except TimeoutError as e:
                    raise IpcError("TIMEOUT", f"no room on channel {self.id} within {timeout} s") from e

    def _has_room(self, n: int) -> bool:
        return self.peer_closed or (
            self._credit_messages >= 1 and self._credit_bytes >= n and not self._conn.output_full()
        )

    async def send_wait(self, message: Message, timeout: float | None = None) -> None:
        """Sends, waiting while the peer's queue is full; waiting senders go first come, first served."""
        timeout = check_timeout(f"send_wait on channel {self.id}", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self._send_lock:
            found_full = False
            while True:
                try:
                    self.send(message)
                    return
                except IpcError as e:
                    if e.code != "BACKPRESSURE":
                        raise
                    # `backpressured` counts sends that found the queue full: this one, once.
                    if found_full:
                        self._stats.backpressured -= 1
                    found_full = True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise IpcError("TIMEOUT", f"send_wait on channel {self.id} found no room within {timeout} s")
                await self.writable(len(message.data), left)

    def open_channel(
        self,
        capacity: int = 1024,
        capacity_bytes: int = 1 << 20,
        max_message_bytes: int | None = None,
        max_handles: int = 64,
    ) -> tuple[Channel, NewEnd]:
        """A new channel on this channel's connection, as `Channel.pair()` in TypeScript: use
        the first end here and send the second in a message on this channel (or another of the
        same connection); the peer gets a Channel to this one."""
        return self._conn.open_channel(resolve_limits(capacity, capacity_bytes, max_message_bytes, max_handles))

    # ---- receiving ----------------------------------------------------------------------------

    def try_recv(self) -> Message | None:
        """The next message if one is queued; raises PEER_CLOSED once the peer closed and all is read."""
        if self.sent_close or self.moved:
            raise self._closed()
        if not self._queue:
            if self.peer_closed:
                raise IpcError("PEER_CLOSED", f"the peer of channel {self.id} has closed")
            return None
        m = self._queue.popleft()
        self._stats.received += 1
        self._stats.received_bytes += len(m.data)
        self._stats.queued_bytes -= len(m.data)
        self._return_credit(1, len(m.data))
        return m

    async def recv(self) -> Message:
        while True:
            m = self.try_recv()
            if m is not None:
                return m
            fut = asyncio.get_running_loop().create_future()
            self._readers.append(fut)
            await fut

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except IpcError as e:
            if e.code in ("PEER_CLOSED", "CLOSED"):
                raise StopAsyncIteration from None
            raise

    # ---- events from the connection -----------------------------------------------------------

    def deliver(self, message: Message) -> None:
        self._grant_messages -= 1
        self._grant_bytes -= len(message.data)
        if self.sent_close:
            for h in message.handles:
                h.close()
            return
        self._accepted += 1
        queue = self._queue
        queue.append(message)
        s = self._stats
        s.queued_bytes += len(message.data)
        if len(queue) > s.high_water_mark:
            s.high_water_mark = len(queue)
        if self._readers:
            self._wake(self._readers)
        if self.on_readable is not None:
            self.on_readable()

    def credit(self, messages: int, n: int) -> None:
        self._credit_messages += messages
        self._credit_bytes += n
        self.output_ready()
        if self.on_credit is not None:
            self.on_credit()

    def room(self) -> tuple[int, int]:
        """The room in the peer's queue: this end's send credits (none once the peer closed)."""
        return (0, 0) if self.peer_closed else (self._credit_messages, self._credit_bytes)

    def output_ready(self) -> None:
        writers, self._writers = self._writers, []
        for f in writers:
            if not f.done():
                f.set_result(None)

    def closed_after(self, accepted: int) -> str | None:
        """The peer closed having accepted `accepted` of our MSGs: the rest count as dropped."""
        lost = (self._sent_here - accepted) % 2**32
        if lost > self._sent_here:
            return f"CLOSE on channel {self.id} says {accepted} messages were accepted of the {self._sent_here} sent"
        self._stats.sent -= lost
        self._stats.dropped += lost
        return None

    def far_closed(self) -> None:
        if self.peer_closed:
            return
        self.peer_closed = True
        self._wake(self._readers)
        if self.on_readable is not None:
            self.on_readable()
        self.output_ready()

    @staticmethod
    def _wake(futures: collections.deque[asyncio.Future[None]]) -> None:
        while futures:
            f = futures.popleft()
            if not f.done():
                f.set_result(None)

    # ---- the rest of the API ------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        s = self._stats
        return Stats(
            s.sent, s.received, s.dropped, s.backpressured, s.discarded, len(self._queue), s.queued_bytes,
            s.high_water_mark, s.sent_bytes, s.received_bytes,
        )

    def adopt_counters(self, counters: tuple[int, ...]) -> None:
        """The statistics that travelled with a moved end (docs/channel.md)."""
        s = self._stats
        (s.sent, s.received, s.dropped, s.backpressured, s.discarded, s.high_water_mark, s.sent_bytes,
         s.received_bytes) = counters

    @property
    def closed(self) -> bool:
        return self.sent_close or self.moved

    def close(self) -> None:
        """Closes this end: queued messages are discarded (their handles closed) and the peer
        sees PEER_CLOSED after what it had already received. An end sent away is not this
        side's to close any more."""
        if not self.moved:
            self.shut()

    def shut(self) -> None:
        """Closes this id, whoever owns the end (its user, or the Bridge it was moved to)."""
        if self.sent_close:
            return
        self.sent_close = True
        while self._queue:
            m = self._queue.popleft()
            self._stats.discarded += 1
            for h in m.handles:
                h.close()
        self._stats.queued_bytes = 0
        self._wake(self._readers)
        if self.on_readable is not None:
            self.on_readable()
        self.output_ready()
        if self.announced:
            self._conn.write_close(self, self._accepted)
        else:
            self._conn.forget(self)



class NewEnd(ChannelHandle):
    """The far end of a channel made by `Channel.open_channel`: send it in a message on the same
    connection and the peer gets a channel whose other end is `mine`, here."""

    def __init__(self, mine: Channel) -> None:
        self.mine = mine
        self.sent = False
        self.closed = False

    def __repr__(self) -> str:
        return f"<NewEnd of channel {self.mine.id}>"

    def announce(self) -> bytes:
        """The descriptor that opens the id at the peer; from now on `mine` may send."""
        self.sent = True
        mine = self.mine
        mine.announced = True
        lim = mine.limits
        mine.credit(lim.capacity, lim.capacity_bytes)
        return DESCRIPTOR.pack(
            mine.id, lim.capacity, lim.capacity_bytes, lim.max_message_bytes, lim.max_handles,
            KIND_CHANNEL, lim.capacity, lim.capacity_bytes, 0, *NO_COUNTERS,
        )

    def close(self) -> None:
        """Given up unsent: `mine` sees its peer closed."""
        if self.sent or self.closed:
            return
        self.closed = True
        self.mine._conn.forget(self.mine)
        self.mine.far_closed()


class Bridge(Books):
    """Stands for a channel end that arrived here (`inner`, on any connection) and was sent on
    through `conn`, as src/transport/socket/bridge.ts does in TypeScript. It relays both ways
    without a queue of its own: it grants the far side exactly the room in inner's peer queue
    (inner's send credits), passes on what inner received only as the far side has credits for
    it, and returns inner's credits as the far side returns them. So the bound at either end is
    the one of the pair, however many hops lie between."""

    def __init__(self, conn: Connection, channel_id: int, inner: Channel) -> None:
        lim = inner.send_limits
        # The far side gets a fresh queue of the pair's limits: full credits for this side.
        self._open_books(conn, channel_id, lim, lim, (lim.capacity, lim.capacity_bytes), inner.room())
        self.inner = inner
        inner.moved = True
        inner.sink = None
        inner.on_readable = self.pump
        inner.on_credit = self.regrant
        # Whoever waited on the end sees CLOSED now.
        inner._wake(inner._readers)
        inner.output_ready()

    def __repr__(self) -> str:
        return f"<Bridge {self.id} on {self._conn.remote} to {self.inner!r}>"

    def descriptor(self) -> bytes:
        lim, s = self.limits, self.inner._stats
        counters = (
            s.sent, s.received, s.dropped, s.backpressured, s.discarded, s.high_water_mark, s.sent_bytes, s.received_bytes
        )
        return DESCRIPTOR.pack(
            self.id, lim.capacity, lim.capacity_bytes, lim.max_message_bytes, lim.max_handles, KIND_CHANNEL,
            self._grant_messages, self._grant_bytes, self.inner.origin, *(c & 0xFFFFFFFF for c in counters),
        )

    def start(self) -> None:
        """Starts relaying, once the frame that announces this id is written."""
        self.pump()
        self.regrant()

    def pump(self) -> None:
        """Passes on what inner received, as far as the far side's credits and the output allow."""
        inner, conn = self.inner, self._conn
        queue = inner._queue
        while not self.sent_close:
            if not queue:
                if inner.peer_closed:
                    self._close()
                return
            m = queue[0]
            n = len(m.data)
            if self._credit_messages < 1 or self._credit_bytes < n:
                return
            if conn.output_full():
                conn.wait_output(self)
                return
            queue.popleft()
            inner._stats.queued_bytes -= n
            if not conn.movable(self, m.handles):
                # It cannot go on (it carries a pipe end): dropped, its room given back.
                discard(m)
                inner._stats.dropped += 1
                inner._return_credit(1, n)
                continue
            self._credit_messages -= 1
            self._credit_bytes -= n
            conn.write_message(self.id, m.type, m.data, m.handles)

    def regrant(self) -> None:
        """Grants the far side whatever room inner's peer gained."""
        if self.sent_close:
            return
        room_messages, room_bytes = self.inner.room()
        m = room_messages - self._grant_messages - self._due_messages
        b = room_bytes - self._grant_bytes - self._due_bytes
        if m > 0 or b > 0:
            self._return_credit(max(m, 0), max(b, 0))

    def deliver(self, message: Message) -> None:
        """A message from the far side: on to inner's peer, which has room for it by construction."""
        n = len(message.data)
        self._grant_messages -= 1
        self._grant_bytes -= n
        if self.sent_close:
            return discard(message)
        inner = self.inner
        if inner.sent_close or inner.peer_closed or not inner._conn.movable(inner, message.handles):
            # Inner's peer closed (this bridge closes once inner is drained), or the message
            # carries a pipe end: dropped, its handles closed, its room granted again.
            discard(message)
            return self.regrant()
        inner._credit_messages -= 1
        inner._credit_bytes -= n
        inner._sent_here += 1
        inner._conn.write_message(inner.id, message.type, message.data, message.handles)
        # Only what went on counts as accepted: the far side counts the rest as dropped.
        self._accepted += 1
        return None

    def credit(self, messages: int, n: int) -> None:
        """The far side took messages: their room is inner's peer's again."""
        self._credit_messages += messages
        self._credit_bytes += n
        self.inner._return_credit(messages, n)
        self.pump()

    def output_ready(self) -> None:
        self.pump()

    def far_closed(self) -> None:
        """The far side closed, or its connection is gone: so is inner."""
        self._close()

    def _close(self) -> None:
        if not self.sent_close:
            self.sent_close = True
            self._conn.write_close(self, self._accepted)
        self.inner.shut()


class PipeEnd(Handle):
    """A data pipe end that arrived from a TypeScript peer. The Python side does not stream
    pipes yet: it can only close the end (the far side then sees it closed)."""

    def __init__(self, conn: Connection, channel_id: int) -> None:
        self._conn = conn
        self.id = channel_id
        self.sent_close = False
        self.got_close = False
        self.announced_bytes = 0

    def close(self) -> None:
        if not self.sent_close:
            self.sent_close = True
            self._conn.write_close(self, 0)

    def far_closed(self) -> None:
        pass


class PipeProducerEnd(PipeEnd, PipeProducer):
    pass


class PipeConsumerEnd(PipeEnd, PipeConsumer):
    pass


Link = Channel | Bridge | PipeEnd


def check_limits(lim: Limits, ceiling: Limits) -> str | None:
    if not 1 <= lim.capacity <= ceiling.capacity:
        return f"capacity {lim.capacity} is outside 1..{ceiling.capacity}"
    if not 1 <= lim.capacity_bytes <= ceiling.capacity_bytes:
        return f"capacityBytes {lim.capacity_bytes} is outside 1..{ceiling.capacity_bytes}"
    top = min(lim.capacity_bytes, ceiling.max_message_bytes)
    if not 1 <= lim.max_message_bytes <= top:
        return f"maxMessageBytes {lim.max_message_bytes} is outside 1..{top}"
    if lim.max_handles > ceiling.max_handles:
        return f"maxHandles {lim.max_handles} exceeds {ceiling.max_handles}"
    return None


class Connection(asyncio.Protocol):
    """One socket connection: the frames of both directions and every channel id on it."""

    def __init__(self, client: bool, options: Options, opened: asyncio.Future[Channel]) -> None:
        self._client = client
        self._options = options
        self._opened = opened
        self._loop = asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self._phase: Literal["hello", "auth", "open", "dead"] = "hello"
        self._nonce = _secrets.token_bytes(32)
        self._peer_nonce = b""
        self._buf = bytearray()
        self._need = HEADER_BYTES
        self._links: dict[int, Link] = {}
        self._next_id = 1 if client else 2
        self._out = bytearray()
        self._flush_scheduled = False
        self._credit_due: list[Books] = []
        self._output_waiters: list[Bridge | Channel] = []
        self._peer_bytes = 0
        self._paused = False
        self._reading = False
        self._last_received = time.monotonic()
        self._wrote = False
        self._timers: list[asyncio.TimerHandle] = []
        self.failure: IpcError | None = None
        self.remote = "socket"
        _live.add(self)

    # ---- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix socket"
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (_socket.AF_INET, _socket.AF_INET6):
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        lim = self._options.limits
        hello = HELLO.pack(
            MAGIC,
            VERSION,
            HELLO_FLAG_AUTH if self._options.secret is not None else 0,
            self._nonce,
            lim.capacity,
            lim.capacity_bytes,
            lim.max_message_bytes,
            lim.max_handles,
            0,
            self._options.heartbeat_ms,
        )
        transport.write(FRAME_HEADER.pack(HELLO_BYTES, FRAME_HELLO, 0, 0, 0, 0) + hello)
        self._timers.append(self._loop.call_later(self._options.handshake_timeout_ms / 1000, self._handshake_timeout))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for link in list(self._links.values()):
            if not isinstance(link, PipeEnd):
                link.output_ready()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._need != HEADER_BYTES or self._buf:
            if self.failure is None and self._phase != "dead":
                self.failure = IpcError(
                    "PROTOCOL_ERROR",
                    f"protocol error from {self.remote}: the connection ended {len(self._buf)} bytes into a frame of {self._need}",
                )
        self._lost()

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        # What this batch of frames makes this side write (replies, credits) goes out in one
        # write at its end.
        self._reading = True
        try:
            self._frames(data)
        finally:
            self._reading = False
            if self._out or self._credit_due:
                self._flush()

    def _frames(self, data: bytes) -> None:
        # With nothing left over (the common case) frames are parsed from the received bytes
        # themselves: a payload is one copy, and the sink reads in place. A frame cut short
        # collects in a bytearray, which grows without copying all of it each time.
        fresh = not self._buf
        buf: bytes | bytearray
        if fresh:
            buf = data
        else:
            buf = self._buf
            buf += data
        at = 0
        n = len(buf)
        links = self._links
        unpack = FRAME_HEADER.unpack_from
        self._need = HEADER_BYTES  # set again below if a frame is still cut short
        while n - at >= HEADER_BYTES and self._phase != "dead":
            length, ftype, _flags, handles, cid, arg = unpack(buf, at)
            end = at + HEADER_BYTES + length
            link = links.get(cid) if ftype == FRAME_MSG and handles == 0 and self._phase == "open" else None
            if link.__class__ is Channel and not link.got_close:  # type: ignore[union-attr]
                # The common frame, a MSG without handles on an open channel, checked the same
                # way as below but without the general dispatch.
                if length > link.limits.max_message_bytes or link._grant_messages < 1 or link._grant_bytes < length:
                    return self.protocol_error(link.refuse(length, 0) or "")
                if n < end:
                    self._need = HEADER_BYTES + length
                    break
                start = at + HEADER_BYTES
                at = end
                sink = link.sink
                if sink is not None and not link._queue and not link.sent_close and sink(arg, buf, start, length):
                    # Taken as by try_recv: received, and its credit due at once.
                    link._grant_messages -= 1
                    link._grant_bytes -= length
                    link._accepted += 1
                    link._stats.received += 1
                    link._stats.received_bytes += length
                    link._return_credit(1, length)
                else:
                    link.deliver(Message(arg, buf[start:end] if fresh else bytes(buf[start:end]), []))
                continue
            # The header is checked before its payload is waited for: a lie costs nothing.
            problem = self._check_header(length, ftype, handles, cid)
            if problem is not None:
                return self.protocol_error(problem)
            if n < end:
                self._need = HEADER_BYTES + length
                break
            self._frame(ftype, handles, cid, arg, bytes(buf[at + HEADER_BYTES : end]))
            at = end
        if not fresh:
            del self._buf[:at]
        elif at < n and self._phase != "dead":
            self._buf += memoryview(data)[at:]

    # ---- reading ------------------------------------------------------------------------------

    def _check_header(self, length: int, ftype: int, handles: int, cid: int) -> str | None:
        if ftype == FRAME_ERROR:
            return f"ERROR frame of {length} bytes" if length > MAX_ERROR_BYTES else None
        if self._phase == "hello":
            if ftype != FRAME_HELLO:
                return f"frame type {ftype} before HELLO"
            return None if length == HELLO_BYTES else f"HELLO of {length} bytes"
        if self._phase == "auth":
            if ftype != FRAME_AUTH:
                return f"frame type {ftype} before AUTH"
            return None if length == AUTH_BYTES else f"AUTH of {length} bytes"
        if ftype == FRAME_PING:
            return None if length == 0 else f"PING of {length} bytes"
        if ftype not in (FRAME_MSG, FRAME_CREDIT, FRAME_CLOSE):
            return f"unknown frame type {ftype}"
        link = self._links.get(cid)
        if link is None:
            return f"unknown channel id {cid}"
        if link.got_close:
            return f"frame type {ftype} on channel {cid} after its CLOSE"
        if ftype == FRAME_CREDIT:
            return None if length == 4 else f"CREDIT of {length} bytes"
        if ftype == FRAME_CLOSE:
            return None if length == 0 else f"CLOSE of {length} bytes"
        if isinstance(link, PipeEnd):
            return f"MSG on pipe id {cid}, which this side does not stream"
        data_bytes = length - handles * DESCRIPTOR_BYTES
        if data_bytes < 0:
            return f"MSG of {length} bytes cannot hold {handles} handle descriptors"
        return link.refuse(data_bytes, handles)

    def _frame(self, ftype: int, count: int, cid: int, arg: int, payload: bytes) -> None:
        if ftype == FRAME_MSG:
            return self._message(cid, arg, count, payload)
        if ftype == FRAME_CREDIT:
            link = self._links[cid]
            if link.sent_close or isinstance(link, PipeEnd):
                return None
            n = struct.unpack_from("<I", payload)[0]
            problem = link.refuse_credit(arg, n)
            if problem is not None:
                return self.protocol_error(problem)
            return link.credit(arg, n)
        if ftype == FRAME_CLOSE:
            link = self._links[cid]
            if isinstance(link, Channel):
                problem = link.closed_after(arg)
                if problem is not None:
                    return self.protocol_error(problem)
            link.got_close = True
            if link.sent_close:
                self._free(link)
            else:
                link.far_closed()
            return None
        if ftype == FRAME_HELLO:
            return self._hello(payload)
        if ftype == FRAME_AUTH:
            return self._auth(payload)
        if ftype == FRAME_ERROR:
            text = payload.decode("utf-8", "replace")
            code = ERROR_KINDS[arg] if arg < len(ERROR_KINDS) else "PROTOCOL_ERROR"
            return self.fail(IpcError(code, f"the peer closed the connection: {text}"), tell_peer=False)
        return None  # PING: any frame is a sign of life

    def _message(self, cid: int, msg_type: int, count: int, payload: bytes) -> None:
        link = self._links[cid]
        assert not isinstance(link, PipeEnd)
        data_bytes = len(payload) - count * DESCRIPTOR_BYTES
        handles: list[Handle] = []
        for i in range(count):
            h = self._import(payload, data_bytes + i * DESCRIPTOR_BYTES)
            if h is None:
                for x in handles:
                    x.close()
                return
            handles.append(h)
        link.deliver(Message(msg_type, payload[:data_bytes] if count else payload, handles))

    def _import(self, payload: bytes, at: int) -> Handle | None:
        (cid, cap, cap_bytes, mmb, max_handles, kind, cm, cb, origin, *counters) = DESCRIPTOR.unpack_from(payload, at)
        lim = Limits(cap, cap_bytes, mmb, max_handles)
        cost = cap_bytes + cap * MESSAGE_COST
        o = self._options
        problem: str | None = None
        if cid % 2 != (0 if self._client else 1) or cid in self._links:
            problem = f"handle descriptor names channel id {cid}, which the peer may not open"
        elif len(self._links) >= o.max_channels:
            problem = f"the peer opened more than {o.max_channels} channels"
        elif self._peer_bytes + cost > o.max_peer_bytes:
            problem = f"channel {cid} may hold {cost} bytes; with the {self._peer_bytes} bytes of the peer's open channels, that exceeds the {o.max_peer_bytes} bytes allowed"
        elif kind == KIND_CHANNEL:
            problem = check_limits(lim, o.max_limits)
            if problem is None and (cm > cap or cb > cap_bytes):
                problem = f"handle descriptor for channel {cid} grants more credits than its capacity"
        elif kind in (KIND_PIPE_PRODUCER, KIND_PIPE_CONSUMER):
            if not 1 <= cap_bytes <= min(o.max_limits.capacity_bytes, 2**30):
                problem = f"pipe descriptor for channel {cid}: capacityBytes {cap_bytes} is out of range"
            elif cap != 0 or mmb != cap_bytes or max_handles != 0 or cm != 0:
                problem = f"pipe descriptor for channel {cid}: capacity {cap}, maxMessageBytes {mmb}, maxHandles {max_handles}, message credits {cm} (must be 0, capacityBytes, 0, 0)"
            elif cb > (cap_bytes if kind == KIND_PIPE_PRODUCER else 0):
                problem = f"pipe descriptor for channel {cid} grants {cb} bytes of credit"
        else:
            problem = f"handle descriptor for channel {cid} has unknown kind {kind}"
        if problem is not None:
            self.protocol_error(problem)
            return None
        self._peer_bytes += cost
        link: Link
        if kind == KIND_CHANNEL:
            link = Channel(self, cid, lim, lim, (cm, cb), origin)
            link.adopt_counters(tuple(counters))
        else:
            link = (PipeProducerEnd if kind == KIND_PIPE_PRODUCER else PipeConsumerEnd)(self, cid)
        link.announced_bytes = cost
        self._links[cid] = link
        return link

    def _hello(self, payload: bytes) -> None:
        magic, version, flags, nonce, cap, cap_bytes, mmb, mh, _r, hb = HELLO.unpack(payload)
        if magic != MAGIC:
            return self.protocol_error("the peer does not speak the ftl-ipc socket protocol")
        if version != VERSION:
            return self.protocol_error(f"unsupported protocol version {version} (this side speaks {VERSION})")
        peer_limits = Limits(cap, cap_bytes, mmb, mh)
        problem = check_limits(peer_limits, Limits(2**32 - 1, 2**32 - 1, 2**32 - 1, 0xFFFF))
        if problem is not None:
            return self.protocol_error(f"root limits: {problem}")
        theirs = bool(flags & HELLO_FLAG_AUTH)
        if theirs != (self._options.secret is not None):
            return self.fail(
                IpcError(
                    "AUTH_FAILED",
                    "the peer requires a shared secret and none was configured"
                    if self._options.secret is None
                    else "the peer did not offer the shared-secret handshake this side requires",
                )
            )
        self._peer_nonce = nonce
        self._peer_limits = peer_limits
        self._peer_heartbeat_ms = hb
        if self._options.secret is None:
            return self._open()
        self._phase = "auth"
        self._write_now(FRAME_HEADER.pack(AUTH_BYTES, FRAME_AUTH, 0, 0, 0, 0) + self._mac(self._client, self._nonce, nonce))
        return None

    def _mac(self, client: bool, own: bytes, theirs: bytes) -> bytes:
        assert self._options.secret is not None
        return hmac.new(self._options.secret, AUTH_LABEL + (b"c" if client else b"s") + own + theirs, hashlib.sha256).digest()

    def _auth(self, payload: bytes) -> None:
        expected = self._mac(not self._client, self._peer_nonce, self._nonce)
        if not hmac.compare_digest(expected, payload):
            return self.fail(IpcError("AUTH_FAILED", "the peer does not know the shared secret"))
        return self._open()

    def _open(self) -> None:
        self._phase = "open"
        for t in self._timers:
            t.cancel()
        self._timers = []
        peer = self._peer_limits
        root = Channel(self, 0, peer, self._options.limits, (peer.capacity, peer.capacity_bytes))
        self._links[0] = root
        self._start_heartbeat()
        if not self._opened.done():
            self._opened.set_result(root)

    def _handshake_timeout(self) -> None:
        if self._phase in ("hello", "auth"):
            self.fail(IpcError("TIMEOUT", f"no handshake from {self.remote} within {self._options.handshake_timeout_ms} ms"))

    # ---- heartbeat ----------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        ms = self._options.heartbeat_ms
        if ms > 0:
            self._timers.append(self._loop.call_later(ms / 1000, self._ping))
        peer_ms = self._peer_heartbeat_ms
        if peer_ms == 0:
            return
        clamped = min(max(peer_ms, MIN_PEER_HEARTBEAT_MS), MAX_PEER_HEARTBEAT_MS)
        timeout = self._options.heartbeat_timeout_ms or 3 * clamped
        self._timeout_s = timeout / 1000
        self._timers.append(self._loop.call_later(self._timeout_s, self._check_alive))

    def _ping(self) -> None:
        if self._phase != "open":
            return
        if not self._wrote and not self._out:
            self._write_now(FRAME_HEADER.pack(0, FRAME_PING, 0, 0, 0, 0))
        self._wrote = False
        self._timers.append(self._loop.call_later(self._options.heartbeat_ms / 1000, self._ping))

    def _check_alive(self) -> None:
        if self._phase != "open":
            return
        idle = time.monotonic() - self._last_received
        if idle < self._timeout_s:
            self._timers.append(self._loop.call_later(self._timeout_s - idle, self._check_alive))
            return
        self.fail(IpcError("TIMEOUT", f"no heartbeat from {self.remote} for {round(self._timeout_s * 1000)} ms"))

    # ---- writing ------------------------------------------------------------------------------

    def output_full(self) -> bool:
        t = self._transport
        held = len(self._out) + (t.get_write_buffer_size() if t is not None else 0)
        return held > self._options.max_output_bytes

    def open_channel(self, limits: Limits) -> tuple[Channel, NewEnd]:
        """A new channel id on this connection: this side's end, and the end to send the peer."""
        new_id = self._next_id
        self._next_id += 2
        # No credits until the peer knows the id: frames on it before its descriptor would be
        # a protocol error there. Sends wait (send_wait) or meet BACKPRESSURE until then.
        mine = Channel(self, new_id, limits, limits, (0, 0))
        mine.announced = False
        self._links[new_id] = mine
        return mine, NewEnd(mine)

    def _not_movable(self, via: Books, handles: Sequence[Handle]) -> str | None:
        """Why these handles cannot go in one message on `via`, if they cannot. An end made by
        open_channel on this connection moves as it is; an end received from a peer (on any
        connection) moves through a Bridge."""
        seen: set[int] = set()
        for h in handles:
            if id(h) in seen:
                return f"{h!r} appears twice"
            seen.add(id(h))
            if isinstance(h, NewEnd):
                if h.mine._conn is not self:
                    return f"{h!r} was made on another connection: send it on a channel of its own"
                if h.sent or h.closed or h.mine.sent_close or h.mine is via:
                    return f"{h!r} was sent or closed already, or is the peer of the channel it goes on"
            elif isinstance(h, Channel):
                if h.moved or h.sent_close or not h.announced or h is via:
                    return f"{h!r} was sent or closed already, is not known to its peer yet, or is the channel it goes on"
            else:
                return f"{h!r}: data pipe ends do not move on from the Python side"
        return None

    def check_movable(self, via: Channel, handles: Sequence[Handle]) -> None:
        problem = self._not_movable(via, handles)
        if problem is not None:
            raise IpcError("HANDLE_NOT_MOVABLE", problem)

    def movable(self, via: Books, handles: Sequence[Handle]) -> bool:
        return not handles or self._not_movable(via, handles) is None

    def write_message(
        self, cid: int, msg_type: int, data: bytes | bytearray | memoryview, handles: Sequence[Handle]
    ) -> None:
        bridges: list[Bridge] | None = None
        descriptors = b""
        if handles:
            bridges = []
            parts: list[bytes] = []
            for h in handles:
                if isinstance(h, NewEnd):
                    parts.append(h.announce())
                else:
                    assert isinstance(h, Channel)
                    bridge = Bridge(self, self._next_id, h)
                    self._next_id += 2
                    self._links[bridge.id] = bridge
                    parts.append(bridge.descriptor())
                    bridges.append(bridge)
            descriptors = b"".join(parts)
        header = FRAME_HEADER.pack(len(data) + len(descriptors), FRAME_MSG, 0, len(handles), cid, msg_type)
        if not self._flush_scheduled and not self._reading and self._transport is not None and not self._paused:
            # The first message of a turn goes out at once (latency); the rest of the turn's
            # messages wait for the flush at its end and go in one write (throughput).
            self._wrote = True
            self._transport.write(header + data + descriptors if descriptors else header + data)
            self._schedule_flush()
        else:
            out = self._out
            out += header
            out += data
            if descriptors:
                out += descriptors
            if self._reading and len(out) >= EAGER_OUT_BYTES and not self._paused:
                # Replies to a batch go out as they reach this size, not all at its end: the
                # peer starts on the first while this side makes the rest.
                self._out = bytearray()
                self._write_now(bytes(out))
        # After the frame that opens their ids, as what they relay must follow it.
        if bridges:
            for bridge in bridges:
                bridge.start()

    def wait_output(self, link: Bridge | Channel) -> None:
        """`link` found the output full: it is told (output_ready) after the next flush."""
        if link not in self._output_waiters:
            self._output_waiters.append(link)

    def forget(self, ch: Channel) -> None:
        """An id the peer never heard of is given up: nothing to tell it."""
        ch.got_close = True
        if self._links.get(ch.id) is ch:
            self._free(ch)

    def credit_due(self, ch: Books) -> None:
        self._credit_due.append(ch)
        if not self._reading:  # else the flush at the end of the batch sends it
            self._schedule_flush()

    def write_close(self, link: Link, accepted: int) -> None:
        if self._phase == "dead":
            return
        self._out += FRAME_HEADER.pack(0, FRAME_CLOSE, 0, 0, link.id, accepted & 0xFFFFFFFF)
        if link.got_close:
            self._free(link)
        self._flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        due, self._credit_due = self._credit_due, []
        for ch in due:
            if ch.sent_close or self._phase == "dead":
                continue
            m, b = ch.take_due()
            if m or b:
                self._out += FRAME_HEADER.pack(4, FRAME_CREDIT, 0, 0, ch.id, m) + struct.pack("<I", b)
        if self._out:
            out, self._out = self._out, bytearray()
            self._write_now(bytes(out))
        if self._output_waiters:
            waiters, self._output_waiters = self._output_waiters, []
            for link in waiters:
                link.output_ready()
        if self._phase == "open" and not self._links and self._transport is not None:
            # Every channel is closed on both sides: end gracefully.
            self._phase = "dead"
            self._transport.close()
            self._lost()

    def _write_now(self, data: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        self._wrote = True
        t.write(data)

    def _free(self, link: Link) -> None:
        self._links.pop(link.id, None)
        self._peer_bytes -= link.announced_bytes
        if not self._links:
            self._schedule_flush()

    # ---- failure ------------------------------------------------------------------------------

    def shut(self) -> None:
        """Closes the connection without blaming the peer (a closing listener)."""
        if self._phase == "dead":
            return
        self._flush_out_only()
        if self._transport is not None:
            self._transport.close()
        self._lost()

    def protocol_error(self, problem: str) -> None:
        self.fail(IpcError("PROTOCOL_ERROR", f"protocol error from {self.remote}: {problem}"))

    def fail(self, error: IpcError, tell_peer: bool = True) -> None:
        """Closes the connection because of `error`; every channel on it sees PEER_CLOSED."""
        if self._phase == "dead":
            return
        self.failure = error
        events.publish("socket:error", {"error": error, "remote": self.remote})
        t = self._transport
        if t is not None:
            if tell_peer:
                text = error.message.encode("utf-8")[:MAX_ERROR_BYTES]
                kind = ERROR_KINDS.index(error.code) if error.code in ERROR_KINDS else 0
                self._flush_out_only()
                t.write(FRAME_HEADER.pack(len(text), FRAME_ERROR, 0, 0, 0, kind) + text)
                t.close()
                self._loop.call_later(1, t.abort)
            else:
                t.abort()
        self._lost()

    def _flush_out_only(self) -> None:
        if self._out and self._transport is not None:
            self._transport.write(bytes(self._out))
            self._out = bytearray()

    def flushed(self) -> bool:
        """The output reached the kernel and the peer answered every CLOSE this side sent."""
        if self._phase == "dead":
            return True
        t = self._transport
        if self._out or (t is not None and t.get_write_buffer_size() > 0):
            return False
        return not any(link.sent_close and not link.got_close for link in self._links.values())

    def _lost(self) -> None:
        self._phase = "dead"
        _live.discard(self)
        for t in self._timers:
            t.cancel()
        self._timers = []
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            link.far_closed()
        if not self._opened.done():
            self._opened.set_exception(
                self.failure or IpcError("CONNECTION_FAILED", "the connection closed during the handshake")
            )


class Events:
    """Diagnostics: the library never prints; subscribers get `(name, payload)` as in
    node:diagnostics_channel (names without the `ftl-ipc:` prefix)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}

    def subscribe(self, name: str, fn: Callable[[dict[str, Any]], None]) -> None:
        self._subscribers.setdefault(name, []).append(fn)

    def unsubscribe(self, name: str, fn: Callable[[dict[str, Any]], None]) -> None:
        self._subscribers.get(name, []).remove(fn)

    def publish(self, name: str, payload: dict[str, Any]) -> None:
        for fn in list(self._subscribers.get(name, [])):
            fn(payload)


events = Events()

_live: set[Connection] = set()


async def flush_sockets(poll_s: float = 0.002) -> None:
    """Returns once every connection of this process has written its output and had each CLOSE
    it sent answered (or died): await it before the process exits, so the peer loses nothing."""
    while not all(c.flushed() for c in list(_live)):
        await asyncio.sleep(poll_s)

Address = str | tuple[str, int]


async def _handshake(opened: asyncio.Future[Channel], options: Options) -> Channel:
    try:
        return await asyncio.wait_for(asyncio.shield(opened), options.handshake_timeout_ms / 1000 + 1)
    except TimeoutError as e:
        raise IpcError("TIMEOUT", f"no handshake within {options.handshake_timeout_ms} ms") from e


async def connect(address: Address, **options: Any) -> Channel:
    """The root channel of a new connection to `address` (a Unix socket path, or (host, port))."""
    o = make_options(**options)
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Channel] = loop.create_future()
    try:
        if isinstance(address, str):
            await loop.create_unix_connection(lambda: Connection(True, o, opened), address)
        else:
            host, port = address
            await loop.create_connection(lambda: Connection(True, o, opened), host, port)
    except OSError as e:
        raise IpcError("CONNECTION_FAILED", f"cannot connect to {address!r}: {e}", e) from e
    return await _handshake(opened, o)


async def channel_over_socket(sock: _socket.socket, client: bool, **options: Any) -> Channel:
    """Runs the protocol over a connected socket (one side client, the other not)."""
    o = make_options(**options)
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Channel] = loop.create_future()
    await loop.create_connection(lambda: Connection(client, o, opened), sock=sock)
    return await _handshake(opened, o)


class Listener:
    """Accepted connections' root channels: `async for ch in listener`, `accept()`, `close()`."""

    def __init__(self, server: asyncio.Server, address: Address, backlog: int) -> None:
        self._server = server
        self.address = address
        self._queue: asyncio.Queue[Channel] = asyncio.Queue(backlog)

    def offer(self, ch: Channel) -> None:
        try:
            self._queue.put_nowait(ch)
        except asyncio.QueueFull:
            ch._conn.fail(IpcError("CONNECTION_FAILED", "the listener's backlog is full"), tell_peer=False)

    async def accept(self) -> Channel:
        return await self._queue.get()

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Channel:
        return await self.accept()

    def close(self) -> None:
        """Stops accepting; connections still in the backlog are closed (channels already taken
        stay open)."""
        self._server.close()
        while not self._queue.empty():
            self._queue.get_nowait()._conn.shut()


async def listen(address: Address, backlog: int = 64, **options: Any) -> Listener:
    o = make_options(**options)
    loop = asyncio.get_running_loop()
    listener: Listener | None = None

    def factory() -> Connection:
        opened: asyncio.Future[Channel] = loop.create_future()
        opened.add_done_callback(
            lambda f: listener.offer(f.result()) if listener and not f.exception() else None
        )
        return Connection(False, o, opened)

    try:
        if isinstance(address, str):
            server = await loop.create_unix_server(factory, address)
            os.chmod(address, 0o600)
            bound: Address = address
        else:
            server = await loop.create_server(factory, address[0], address[1])
            bound = server.sockets[0].getsockname()[:2]
    except OSError as e:
        raise IpcError("CONNECTION_FAILED", f"cannot listen on {address!r}: {e}", e) from e
    listener = Listener(server, bound, backlog)
    return listener


_parent: asyncio.Future[dict[str, Channel]] | None = None


async def parent_channels(**options: Any) -> dict[str, Channel]:
    """In a process started by spawnProcess or `ftl-ipc run`: its channels by name. Later calls
    return the same channels."""
    global _parent
    if _parent is None:
        _parent = asyncio.get_running_loop().create_future()
        try:
            _parent.set_result(await _receive_from_parent(options))
        except BaseException as e:
            _parent.set_exception(e)
    return await _parent


async def _receive_from_parent(options: dict[str, Any]) -> dict[str, Channel]:
    import json

    fd_text = os.environ.get(FD_ENV)
    if fd_text is None or not fd_text.isdigit():
        raise IpcError("INVALID_ARGUMENT", f"{FD_ENV} is not set: this process was not started by spawnProcess")
    sock = _socket.socket(fileno=int(fd_text))
    sock.setblocking(False)
    root = await channel_over_socket(sock, True, **options)
    message = await root.recv()
    root.close()
    try:
        names = json.loads(message.data)
    except ValueError:
        names = None
    if message.type != BOOTSTRAP_TYPE or not isinstance(names, list) or len(names) != len(message.handles):
        for h in message.handles:
            h.close()
        raise IpcError("INVALID_MESSAGE", "the first message from the parent is not the channel list")
    return {str(n): h for n, h in zip(names, message.handles, strict=True)}  # type: ignore[misc]
