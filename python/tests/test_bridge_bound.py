"""The bound across a Python bridge is exact (docs/python.md, as for TypeScript in
docs/socket-transport.md): the far sender gets back exactly the room the reader made, also when
the reader's credits reach the bridge several at a time, before the bridge has passed the first
ones on. Python on all three sides: X opens a channel, Y forwards its end to Z (a Bridge), and
the bytes from X to Y go through a relay that can hold them and pass them on in one write, as a
busy network or a slow reader makes them arrive."""

from __future__ import annotations

import asyncio
import socket
import unittest

from ftl_ipc import IpcError
from ftl_ipc.connection import Channel, channel_over_socket
from ftl_ipc.wire import Message

WAIT_S = 10.0
#: A CREDIT frame: a 16-byte header and 4 bytes of byte credit.
CREDIT_FRAME_BYTES = 20


class Relay:
    """Passes bytes between two sockets unchanged; while holding, keeps what comes from the X
    side and passes it on in one write at `release`."""

    def __init__(self, x_side: socket.socket, y_side: socket.socket) -> None:
        self._x, self._y = x_side, y_side
        for s in (x_side, y_side):
            s.setblocking(False)
        self.holding = False
        self.held = bytearray()
        self._more = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._pump(x_side, y_side, holds=True)),
            asyncio.create_task(self._pump(y_side, x_side, holds=False)),
        ]

    async def _pump(self, src: socket.socket, dst: socket.socket, holds: bool) -> None:
        loop = asyncio.get_running_loop()
        while data := await loop.sock_recv(src, 1 << 16):
            if holds and self.holding:
                self.held += data
                self._more.set()
            else:
                await loop.sock_sendall(dst, data)
        dst.shutdown(socket.SHUT_WR)

    async def held_at_least(self, n: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.held) < n:
                self._more.clear()
                await self._more.wait()

    async def release(self) -> None:
        data = bytes(self.held)
        self.held.clear()
        self.holding = False
        await asyncio.get_running_loop().sock_sendall(self._y, data)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._x.close()
        self._y.close()


class CreditsArrivingTogether(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        a, relay_x = socket.socketpair()
        relay_y, b = socket.socketpair()
        self.relay = Relay(relay_x, relay_y)
        self.x, self.y_from_x = await asyncio.gather(channel_over_socket(a, True), channel_over_socket(b, False))
        c, d = socket.socketpair()
        self.y_to_z, self.z = await asyncio.gather(channel_over_socket(c, True), channel_over_socket(d, False))

    async def asyncTearDown(self) -> None:
        for ch in (self.x, self.y_from_x, self.y_to_z, self.z):
            ch.close()
        await asyncio.sleep(0.05)
        await self.relay.stop()

    async def forwarded(self, capacity: int, capacity_bytes: int) -> tuple[Channel, Channel]:
        """X's end of a new channel, and Z's end of it, which reaches X through Y's bridge."""
        x_end, theirs = self.x.open_channel(capacity=capacity, capacity_bytes=capacity_bytes)
        self.x.send(Message(1, b"", [theirs]))
        (y_end,) = (await asyncio.wait_for(self.y_from_x.recv(), WAIT_S)).handles
        self.y_to_z.send(Message(2, b"", [y_end]))
        (z_end,) = (await asyncio.wait_for(self.z.recv(), WAIT_S)).handles
        assert isinstance(z_end, Channel)
        return x_end, z_end

    async def fill(self, z_end: Channel, x_end: Channel, data: bytes) -> int:
        """Z sends until its credits run out and X has them all; how many it sent."""
        sent = 0
        while z_end.send(Message(3, data), on_full="drop"):
            sent += 1
        async with asyncio.timeout(WAIT_S):
            while x_end.stats.queued_messages < sent:
                await asyncio.sleep(0.005)
        return sent

    async def take_one_credit_at_a_time(self, x_end: Channel, count: int) -> None:
        """X takes `count` messages, each returning its credit in a CREDIT frame of its own;
        the relay holds them all and hands them to Y in one piece."""
        self.relay.holding = True
        for i in range(count):
            self.assertIsNotNone(x_end.try_recv())
            await self.relay.held_at_least((i + 1) * CREDIT_FRAME_BYTES)
        await self.relay.release()

    async def sent_after_room(self, z_end: Channel, data: bytes) -> int:
        """How many messages of `data` Z can send once the room comes back, waiting first for any
        credit beyond it (a slip would grant it in the same CREDIT frame or just after)."""
        await z_end.writable(len(data), timeout=WAIT_S)
        await asyncio.sleep(0.2)
        sent = 0
        while z_end.send(Message(4, data), on_full="drop"):
            sent += 1
        return sent

    async def check_bound(self, capacity: int, capacity_bytes: int, data: bytes, full: int) -> None:
        x_end, z_end = await self.forwarded(capacity, capacity_bytes)
        self.assertEqual(await self.fill(z_end, x_end, data), full)
        with self.assertRaises(IpcError) as caught:
            z_end.send(Message(3, data))
        self.assertEqual(caught.exception.code, "BACKPRESSURE")
        await self.take_one_credit_at_a_time(x_end, 2)
        # Two taken, so exactly two more fit: by messages or by bytes, whichever binds.
        self.assertEqual(await self.sent_after_room(z_end, data), 2, "Z got more room than X made")
        async with asyncio.timeout(WAIT_S):
            while x_end.stats.queued_messages < full:
                await asyncio.sleep(0.005)
        self.assertEqual(x_end.stats.queued_messages, full)
        self.assertFalse(x_end.peer_closed, "X's connection closed: Y sent more than X granted")
        x_end.close()
        z_end.close()

    async def test_by_messages_when_two_credits_reach_the_bridge_at_once(self) -> None:
        await asyncio.wait_for(self.check_bound(4, 1 << 16, b"m", full=4), 4 * WAIT_S)

    async def test_by_bytes_when_two_credits_reach_the_bridge_at_once(self) -> None:
        await asyncio.wait_for(self.check_bound(64, 400, bytes(100), full=4), 4 * WAIT_S)


if __name__ == "__main__":
    unittest.main()
