"""A channel end received from a TypeScript peer and sent on by the Python side (a Bridge):
to a second TypeScript peer, or back on the connection it came from. Messages flow both ways,
the bound of the pair (capacity 8) holds end to end, and a close travels through."""

from __future__ import annotations

import asyncio
import socket
import unittest

from ftl_ipc import IpcError
from ftl_ipc.connection import Channel, Connection, channel_over_socket, connect
from ftl_ipc.wire import Message

from .test_socket import PeerTest

NUMBERS = list(range(8 + 20))  # the flood up to the bound, then 20 more


async def only_root_left(conn: Connection) -> bool:
    """The bridge and the end it stood for are gone once both sides closed them (the root may
    be gone too: a TypeScript peer that closed all it had ends the connection)."""
    for _ in range(200):
        if set(conn._links) <= {0}:
            return True
        await asyncio.sleep(0.01)
    return False


class ForwardedEnds(PeerTest):
    async def test_a_received_end_moves_on_to_a_second_typescript_peer(self) -> None:
        source, source_address = await self.ts_listener("relay", "--role", "source")
        sink, sink_address = await self.ts_listener("relay", "--role", "sink", tcp=True)
        to_source, to_sink = await connect(source_address), await connect(sink_address)
        m = await to_source.recv()
        (end,) = m.handles
        assert isinstance(end, Channel)
        self.assertTrue(to_sink.send(Message(m.type, m.data, [end])))
        # The end belongs to the bridge now.
        self.assertTrue(end.closed)
        with self.assertRaises(IpcError) as caught:
            end.send(Message(1, b"mine?"))
        self.assertEqual(caught.exception.code, "CLOSED")
        with self.assertRaises(IpcError) as caught:
            to_sink.send(Message(1, b"again", [end]))
        self.assertEqual(caught.exception.code, "HANDLE_NOT_MOVABLE")
        # Neither TypeScript end reads yet: each gets exactly the pair's 8 through, however long it tries.
        self.assertEqual(await source.line(), {"sent": [8]})
        self.assertEqual(await sink.line(), {"sent": [8]})
        source.tell("read")
        sink.tell("read")
        from_source, from_sink = await source.line(), await sink.line()
        self.assertEqual(from_source["got"], [NUMBERS])
        self.assertEqual(from_sink["got"], [NUMBERS])
        self.assertTrue(from_sink["closed"], from_sink)  # the source closed: PEER_CLOSED at the sink
        self.assertTrue(await only_root_left(to_source._conn))
        self.assertTrue(await only_root_left(to_sink._conn))
        to_source.close()
        to_sink.close()
        self.assertEqual((await source.exit_code(), await sink.exit_code()), (0, 0))

    async def test_a_received_end_sent_back_on_its_own_connection(self) -> None:
        p, address = await self.ts_listener("relay", "--role", "loop")
        root = await connect(address)
        m = await root.recv()
        self.assertTrue(root.send(Message(m.type, m.data, m.handles)))
        self.assertEqual(await p.line(), {"sent": [8, 8]})
        p.tell("read")
        said = await p.line()
        self.assertEqual(said["got"], [NUMBERS, NUMBERS])
        self.assertTrue(said["closed"], said)
        self.assertTrue(await only_root_left(root._conn))
        root.close()
        self.assertEqual(await p.exit_code(), 0)

    async def test_the_far_peer_going_away_closes_the_forwarded_end(self) -> None:
        source, source_address = await self.ts_listener("relay", "--role", "source")
        sink, sink_address = await self.ts_listener("relay", "--role", "sink")
        to_source, to_sink = await connect(source_address), await connect(sink_address)
        m = await to_source.recv()
        to_sink.send(Message(m.type, m.data, m.handles))
        self.assertEqual((await sink.line())["sent"], [8])
        self.assertEqual((await source.line())["sent"], [8])
        sink.kill()
        # The source's end sees PEER_CLOSED after what had reached it: its exchange fails.
        source.tell("read")
        said = await source.line()
        self.assertEqual(said.get("error"), "PEER_CLOSED", said)
        self.assertTrue(await only_root_left(to_source._conn))
        to_source.close()
        to_sink.close()


class NestedBridges(unittest.IsolatedAsyncioTestCase):
    """Python on all three sides (X - Y - Z over socket pairs): Y forwards an end X made, and
    ends sent inside messages through that bridge, either way, are bridged in turn."""

    async def link(self) -> tuple[Channel, Channel]:
        a, b = socket.socketpair()
        return await asyncio.gather(channel_over_socket(a, True), channel_over_socket(b, False))

    async def test_ends_inside_bridged_messages_are_bridged_too(self) -> None:
        x, y_from_x = await self.link()
        y_to_z, z = await self.link()
        x_end, theirs = x.open_channel(capacity=4, capacity_bytes=4096)
        x.send(Message(1, b"", [theirs]))
        (y_end,) = (await y_from_x.recv()).handles
        y_to_z.send(Message(2, b"", [y_end]))
        (z_end,) = (await z.recv()).handles
        assert isinstance(z_end, Channel)
        self.assertEqual(z_end.send_limits.capacity, 4)
        # The bound of X's channel holds at Z: 4 messages, then BACKPRESSURE, however long Z waits.
        for i in range(4):
            z_end.send(Message(3, bytes([i])))
        await asyncio.sleep(0.05)
        with self.assertRaises(IpcError) as caught:
            z_end.send(Message(3, b"one more"))
        self.assertEqual(caught.exception.code, "BACKPRESSURE")
        self.assertEqual([(await x_end.recv()).data for _ in range(4)], [bytes([i]) for i in range(4)])
        await z_end.send_wait(Message(3, b"room again"), timeout=5)
        self.assertEqual((await x_end.recv()).data, b"room again")
        # X sends a new end through the bridge: Z gets a channel that leads to X.
        x_inner, x_theirs = x_end.open_channel(capacity=2, capacity_bytes=1024)
        x_end.send(Message(4, b"inner", [x_theirs]))
        m = await asyncio.wait_for(z_end.recv(), 5)
        (z_inner,) = m.handles
        assert isinstance(z_inner, Channel)
        await z_inner.send_wait(Message(5, b"to x"), timeout=5)
        self.assertEqual((await asyncio.wait_for(x_inner.recv(), 5)).data, b"to x")
        # And Z sends one of its own back the other way.
        z_own, z_theirs = z_end.open_channel(capacity=2, capacity_bytes=1024)
        z_end.send(Message(6, b"back", [z_theirs]))
        (x_got,) = (await asyncio.wait_for(x_end.recv(), 5)).handles
        assert isinstance(x_got, Channel)
        await x_got.send_wait(Message(7, b"to z"), timeout=5)
        self.assertEqual((await asyncio.wait_for(z_own.recv(), 5)).data, b"to z")
        # Closing at X reaches Z through both bridges, after what was sent before.
        x_inner.send(Message(8, b"last"))
        x_inner.close()
        self.assertEqual((await asyncio.wait_for(z_inner.recv(), 5)).data, b"last")
        with self.assertRaises(IpcError) as caught:
            await asyncio.wait_for(z_inner.recv(), 5)
        self.assertEqual(caught.exception.code, "PEER_CLOSED")
        # And the other way: Z closes the forwarded end itself, X sees PEER_CLOSED after its last message.
        z_end.send(Message(9, b"bye"))
        z_end.close()
        self.assertEqual((await asyncio.wait_for(x_end.recv(), 5)).data, b"bye")
        with self.assertRaises(IpcError) as caught:
            await asyncio.wait_for(x_end.recv(), 5)
        self.assertEqual(caught.exception.code, "PEER_CLOSED")
        for ch in (z_inner, z_own, x_got, x_end):
            ch.close()
        self.assertTrue(await only_root_left(y_from_x._conn))
        self.assertTrue(await only_root_left(y_to_z._conn))
        for ch in (x, y_from_x, y_to_z, z):
            ch.close()
        await asyncio.sleep(0.05)
