"""A channel end received from a TypeScript peer and sent on by the Python side (a Bridge):
to a second TypeScript peer, or back on the connection it came from. Messages flow both ways,
the bound of the pair (capacity 8) holds end to end, and a close travels through."""

from __future__ import annotations

import asyncio

from ftl_ipc import IpcError
from ftl_ipc.connection import Channel, Connection, connect
from ftl_ipc.wire import Message

from .test_socket import PeerTest

NUMBERS = list(range(8 + 20))  # the flood up to the bound, then 20 more


async def only_root_left(conn: Connection) -> bool:
    """The bridge and the end it stood for are gone once both sides closed them."""
    for _ in range(200):
        if list(conn._links) == [0]:
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
