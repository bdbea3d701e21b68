"""The Python socket transport against a real TypeScript peer (a node child process), over
Unix sockets and TCP, in both directions."""

from __future__ import annotations

import asyncio
import socket
import struct
import unittest
from typing import Any

from ftl_ipc import IpcError
from ftl_ipc.connection import FRAME_HEADER, Channel, connect, events, listen
from ftl_ipc.wire import Message

from .generated import rpctest
from .peer import Peer, socket_path


async def settle() -> None:
    """Lets the transports closed by a test finish closing before its event loop does."""
    await asyncio.sleep(0.05)


class PeerTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.peers: list[Peer] = []

    async def asyncTearDown(self) -> None:
        for p in self.peers:
            p.kill()
            await p.proc.wait()
        await settle()

    async def peer(self, *args: str) -> Peer:
        p = await Peer.start(*args)
        self.peers.append(p)
        return p

    async def ts_listener(self, scenario: str, *args: str, tcp: bool = False) -> tuple[Peer, Any]:
        where = ["--tcp"] if tcp else ["--path", socket_path()]
        p = await self.peer(scenario, *where, *args)
        return p, await p.address()


class PythonClientTypeScriptServer(PeerTest):
    async def echo(self, tcp: bool, secret: str | None) -> None:
        extra = ["--secret", secret] if secret else []
        p, address = await self.ts_listener("echo", *extra, tcp=tcp)
        ch = await connect(address, **({"secret": secret} if secret else {}))
        for i in range(200):
            await ch.send_wait(Message(i + 1, bytes([i % 256]) * (i % 50)))
        for i in range(200):
            m = await ch.recv()
            self.assertEqual((m.type, m.data), (i + 1, bytes([i % 256]) * (i % 50)))
        ch.close()
        said = await p.line()
        self.assertEqual(said["echoed"], 200)
        self.assertEqual(await p.exit_code(), 0)
        self.assertEqual(ch.stats.sent, 200)
        self.assertEqual(ch.stats.received, 200)
        self.assertEqual((ch.stats.sent_bytes, ch.stats.received_bytes), (4900, 4900))

    async def test_echo_over_a_unix_socket(self) -> None:
        await self.echo(tcp=False, secret=None)

    async def test_echo_over_tcp_with_a_shared_secret(self) -> None:
        await self.echo(tcp=True, secret="s3cret")

    async def test_a_wrong_secret_is_auth_failed(self) -> None:
        _, address = await self.ts_listener("echo", "--secret", "right", tcp=True)
        with self.assertRaises(IpcError) as caught:
            await connect(address, secret="wrong")
        self.assertEqual(caught.exception.code, "AUTH_FAILED")

    async def test_a_secret_on_one_side_only_is_auth_failed(self) -> None:
        _, address = await self.ts_listener("echo", "--secret", "right")
        with self.assertRaises(IpcError) as caught:
            await connect(address)
        self.assertEqual(caught.exception.code, "AUTH_FAILED")

    async def test_the_bound_is_exact_a_python_sender_meets_backpressure_from_typescript_credits(self) -> None:
        p, address = await self.ts_listener("hold", "--capacity", "5")
        ch = await connect(address)
        for i in range(5):
            self.assertTrue(ch.send(Message(1, bytes([i]))))
        with self.assertRaises(IpcError) as caught:
            ch.send(Message(1, b"x"))
        self.assertEqual(caught.exception.code, "BACKPRESSURE")
        self.assertFalse(ch.send(Message(1, b"x"), on_full="drop"))
        self.assertEqual((ch.stats.sent, ch.stats.dropped, ch.stats.backpressured), (5, 1, 2))
        p.tell("read")
        # Credits come back as the TypeScript side takes them: a waiting send goes through.
        await ch.send_wait(Message(1, b"later"), timeout=10)
        ch.close()
        self.assertEqual((await p.line())["received"], ch.stats.sent)

    async def test_a_sender_waiting_only_for_output_room_wakes_once_it_is_written(self) -> None:
        p, address = await self.ts_listener("hold", "--capacity", "100", "--capacity-bytes", str(1 << 20))
        ch = await connect(address, max_output_bytes=4096)
        sent = 0
        with self.assertRaises(IpcError) as caught:
            while True:
                ch.send(Message(1, bytes(1024)))
                sent += 1
        self.assertEqual(caught.exception.code, "BACKPRESSURE")
        self.assertLess(sent, 10)  # the output budget stopped it, not the credits
        # No credit comes back while the peer holds: only the written output can wake it.
        await ch.send_wait(Message(1, bytes(1024)), timeout=5)
        p.tell("read")
        ch.close()
        self.assertEqual((await p.line())["received"], sent + 1)

    async def test_byte_credits_bind_too(self) -> None:
        p, address = await self.ts_listener("hold", "--capacity", "100", "--capacity-bytes", "250")
        ch = await connect(address)
        self.assertTrue(ch.send(Message(1, bytes(100))))
        self.assertTrue(ch.send(Message(1, bytes(100))))
        with self.assertRaises(IpcError) as caught:
            ch.send(Message(1, bytes(100)))  # 300 bytes would exceed the 250 granted
        self.assertEqual(caught.exception.code, "BACKPRESSURE")
        self.assertTrue(ch.send(Message(1, bytes(50))))  # exactly what is left
        with self.assertRaises(IpcError) as caught:
            ch.send(Message(1, bytes(251)))
        self.assertEqual(caught.exception.code, "TOO_LARGE")
        p.tell("read")
        await ch.send_wait(Message(1, bytes(250)), timeout=10)
        ch.close()
        self.assertEqual((await p.line())["received"], 4)

    async def test_a_channel_moved_inside_a_message_crosses_the_language_boundary(self) -> None:
        p, address = await self.ts_listener("handle")
        root = await connect(address)
        m = await root.recv()
        self.assertEqual((m.type, m.data), (7, b"here"))
        (moved,) = m.handles
        assert isinstance(moved, Channel)
        self.assertEqual(moved.send_limits.capacity, 8)
        for word in ["one", "two", "three"]:
            await moved.send_wait(Message(10, word.encode()))
        got = [await moved.recv() for _ in range(3)]
        self.assertEqual([(x.type, x.data) for x in got], [(11, b"ONE"), (11, b"TWO"), (11, b"THREE")])
        moved.close()
        said = await p.line()
        self.assertEqual(said["stats"]["received"], 3)
        with self.assertRaises(IpcError) as caught:
            await root.recv()
        self.assertEqual(caught.exception.code, "PEER_CLOSED")
        # The TypeScript side waits (flushSockets) for the answer to the CLOSE it sent.
        root.close()
        self.assertEqual(await p.exit_code(), 0)

    async def test_a_channel_made_in_python_moves_to_typescript_and_works(self) -> None:
        p, address = await self.ts_listener("take-handle", tcp=True)
        root = await connect(address)
        # Small: a TypeScript listener allows only maxUnacceptedBytes (1 MiB) of channels opened
        # before its accept() took the connection, and this races the accept.
        mine, theirs = root.open_channel(capacity=3, capacity_bytes=4096)
        with self.assertRaises(IpcError) as caught:
            mine.send(Message(1, b"too early"))  # the peer does not know the id yet
        self.assertEqual(caught.exception.code, "BACKPRESSURE")
        self.assertTrue(root.send(Message(9, b"take it", [theirs])))
        with self.assertRaises(IpcError) as caught:
            root.send(Message(9, b"again", [theirs]))
        self.assertEqual(caught.exception.code, "HANDLE_NOT_MOVABLE")
        words = [f"word {i}" for i in range(10)]  # more than the capacity: credits flow both ways

        async def sending() -> None:
            for w in words:
                await mine.send_wait(Message(20, w.encode()))

        task = asyncio.ensure_future(sending())
        errors: list[Any] = []
        events.subscribe("socket:error", errors.append)
        try:
            got = [await mine.recv() for _ in words]
        except IpcError as e:
            raise AssertionError(f"{e} after {errors}: the peer said {await p.line()}") from e
        await task
        self.assertEqual([(m.type, m.data) for m in got], [(21, w.upper().encode()) for w in words])
        self.assertLessEqual(mine.stats.high_water_mark, 3)
        mine.close()
        said = await p.line()
        self.assertEqual(said["limits"]["capacity"], 3)
        self.assertEqual(said["stats"]["received"], 10)
        with self.assertRaises(IpcError):
            await root.recv()
        root.close()
        self.assertEqual(await p.exit_code(), 0)


class TypeScriptClientPythonServer(PeerTest):
    async def serve_one(self, tcp: bool) -> tuple[Any, Any]:
        if tcp:
            listener = await listen(("127.0.0.1", 0), capacity=4)
            target = str(listener.address[1])
        else:
            path = socket_path()
            listener = await listen(path, capacity=4)
            target = path
        return listener, target

    async def test_a_typescript_sender_meets_backpressure_from_python_credits(self) -> None:
        for tcp in (False, True):
            with self.subTest(tcp=tcp):
                listener, target = await self.serve_one(tcp)
                p = await self.peer("flood", "--connect", target)
                ch = await listener.accept()
                said = await p.line()
                self.assertEqual(said, {"sent": 4, "code": "BACKPRESSURE"})
                p.tell("more")
                got = [await ch.recv() for _ in range(14)]
                self.assertEqual([m.type for m in got], [1] * 4 + [2] * 10)
                with self.assertRaises(IpcError) as caught:
                    await ch.recv()
                self.assertEqual(caught.exception.code, "PEER_CLOSED")
                self.assertLessEqual(ch.stats.high_water_mark, 4)
                ch.close()
                listener.close()
                self.assertEqual(await p.exit_code(), 0)

    async def test_a_typescript_client_echoes_through_python(self) -> None:
        listener, target = await self.serve_one(False)
        p = await self.peer("echo", "--connect", target)
        ch = await listener.accept()
        for i in range(50):
            await ch.send_wait(Message(3, str(i).encode()))
        self.assertEqual([(await ch.recv()).data for _ in range(50)], [str(i).encode() for i in range(50)])
        ch.close()
        self.assertEqual((await p.line())["echoed"], 50)


class MalformedToTypeScript(PeerTest):
    async def test_malformed_frames_to_a_typescript_listener_close_only_that_connection(self) -> None:
        p, address = await self.ts_listener("echo", tcp=True)
        r, w = await asyncio.open_connection(*address)
        w.write(FRAME_HEADER.pack(5, 9, 0, 0, 0, 0) + b"junk!")  # an unknown frame before HELLO
        got = await asyncio.wait_for(r.read(), 10)
        w.close()
        # Its HELLO, then an ERROR frame (type 7, kind 0: protocol) naming the problem, then EOF.
        at = 16 + 60
        length, ftype, _, _, _, kind = FRAME_HEADER.unpack_from(got, at)
        self.assertEqual((ftype, kind), (7, 0))
        self.assertIn(b"before HELLO", got[at + 16 : at + 16 + length])
        self.assertEqual(p.proc.returncode, None)  # the peer process carries on

    async def test_a_malformed_request_closes_the_typescript_servers_channel(self) -> None:
        _, address = await self.ts_listener("rpc-serve")
        ch = await connect(address)
        # An add request whose int32 is cut short: the server refuses it and closes the channel.
        ch.send(Message(rpctest.ADD.id, bytes.fromhex("4649010001000000 0102".replace(" ", ""))))
        with self.assertRaises(IpcError) as caught:
            await asyncio.wait_for(ch.recv(), 10)
        self.assertEqual(caught.exception.code, "PEER_CLOSED")
        ch.close()


class Heartbeat(unittest.IsolatedAsyncioTestCase):
    async def raw_peer(self, heartbeat_ms: int) -> tuple[str, asyncio.Queue[bytes]]:
        """A raw listener that answers HELLO (announcing `heartbeat_ms`) and then only records."""
        frames: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            hello = await r.readexactly(76)
            payload = bytearray(hello[16:])
            struct.pack_into("<I", payload, 56, heartbeat_ms)
            w.write(hello[:16] + payload)
            try:
                while True:
                    frames.put_nowait(await r.readexactly(16))
            except asyncio.IncompleteReadError:
                frames.put_nowait(b"")

        path = socket_path()
        self.server = await asyncio.start_unix_server(on_connect, path)
        return path, frames

    async def asyncTearDown(self) -> None:
        self.server.close()
        await settle()

    async def test_an_idle_side_sends_ping(self) -> None:
        path, frames = await self.raw_peer(0)
        ch = await connect(path, heartbeat_ms=50)
        frame = await asyncio.wait_for(frames.get(), 5)
        self.assertEqual(FRAME_HEADER.unpack(frame)[1], 6)  # PING
        ch.close()

    async def test_a_silent_peer_is_timed_out_and_its_channels_see_peer_closed(self) -> None:
        path, _ = await self.raw_peer(100)  # announces 100 ms, then never sends again
        errors: list[IpcError] = []
        events.subscribe("socket:error", lambda e: errors.append(e["error"]))
        ch = await connect(path, heartbeat_ms=0)
        with self.assertRaises(IpcError) as caught:
            await asyncio.wait_for(ch.recv(), 5)
        self.assertEqual(caught.exception.code, "PEER_CLOSED")
        self.assertEqual([e.code for e in errors], ["TIMEOUT"])


class Malformed(unittest.IsolatedAsyncioTestCase):
    async def asyncTearDown(self) -> None:
        await settle()

    async def test_malformed_frames_close_only_that_connection(self) -> None:
        errors: list[IpcError] = []
        events.subscribe("socket:error", lambda e: errors.append(e["error"]))
        path = socket_path()
        listener = await listen(path)
        bad = [
            b"GET / HTTP/1.1\r\n\r\n",  # a foreign protocol: a HELLO of the wrong size
            FRAME_HEADER.pack(0, 3, 0, 0, 0, 0),  # a MSG before HELLO
            FRAME_HEADER.pack(0xFFFFFFF0, 1, 0, 0, 0, 0),  # a huge length: refused before it is read
        ]
        for frame in bad:
            r, w = await asyncio.open_unix_connection(path)
            w.write(frame)
            await w.drain()
            header = await asyncio.wait_for(r.read(), 5)  # our HELLO, then ERROR, then EOF
            self.assertIn(b"protocol error", header)
            w.close()
        self.assertEqual([e.code for e in errors], ["PROTOCOL_ERROR"] * 3)
        # The listener carries on.
        client = asyncio.create_task(connect(path))
        server = await listener.accept()
        (await client).send(Message(1, b"ok"))
        self.assertEqual((await server.recv()).data, b"ok")
        listener.close()

    async def raw(self, listener_options: dict[str, Any], frames: bytes) -> bytes:
        """A raw client that reflects the listener's HELLO as its own, then sends `frames`;
        returns what the listener sent after its HELLO, up to EOF."""
        path = socket_path()
        listener = await listen(path, **listener_options)
        r, w = await asyncio.open_unix_connection(path)
        hello = await r.readexactly(76)
        w.write(hello + frames)
        rest = await asyncio.wait_for(r.read(), 5)
        w.close()
        listener.close()
        return rest

    def error_text(self, rest: bytes) -> str:
        at = 0
        while at < len(rest):
            length, ftype, _, _, _, kind = FRAME_HEADER.unpack_from(rest, at)
            if ftype == 7:
                self.assertEqual(kind, 0)
                return rest[at + 16 : at + 16 + length].decode()
            at += 16 + length
        raise AssertionError(f"no ERROR frame in {rest!r}")

    async def test_more_messages_than_the_credits_granted_is_a_protocol_error(self) -> None:
        msg = FRAME_HEADER.pack(1, 3, 0, 0, 0, 1) + b"x"
        rest = await self.raw({"capacity": 2}, msg * 3)
        self.assertIn("exceeds the credits granted (0 messages", self.error_text(rest))

    async def test_credits_above_the_queue_they_stand_for_are_a_protocol_error(self) -> None:
        credit = FRAME_HEADER.pack(4, 4, 0, 0, 0, 1) + struct.pack("<I", 0)
        rest = await self.raw({}, credit)
        self.assertIn("would exceed the queue it stands for", self.error_text(rest))

    async def test_a_descriptor_with_a_forbidden_id_or_an_unknown_id_is_a_protocol_error(self) -> None:
        # The connecting side opens odd ids; 2 is the listener's to open.
        descriptor = struct.pack("<IIIIHHIII6I8x", 2, 4, 4096, 4096, 4, 0, 4, 4096, 0, 0, 0, 0, 0, 0, 0)
        msg = FRAME_HEADER.pack(64, 3, 0, 1, 0, 1) + descriptor
        self.assertIn("which the peer may not open", self.error_text(await self.raw({}, msg)))
        unknown = FRAME_HEADER.pack(0, 5, 0, 0, 9, 0)  # CLOSE of an id nobody opened
        self.assertIn("unknown channel id 9", self.error_text(await self.raw({}, unknown)))

    async def test_an_oversized_message_is_refused_by_its_header(self) -> None:
        path = socket_path()
        listener = await listen(path, max_message_bytes=16)
        sock = socket.socket(socket.AF_UNIX)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, path)
        hello = await loop.sock_recv(sock, 76)
        self.assertEqual(len(hello), 76)
        # Reflect its HELLO as ours (same limits, no secret), then a MSG over maxMessageBytes.
        await loop.sock_sendall(sock, hello[:16] + hello[16:] + FRAME_HEADER.pack(17, 3, 0, 0, 0, 1))
        rest = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 4096), 5):
            rest += chunk
        (length, ftype, _, _, _, kind) = FRAME_HEADER.unpack_from(rest, 0)
        self.assertEqual((ftype, kind), (7, 0))
        self.assertIn(b"exceeds its maxMessageBytes 16", rest[16 : 16 + length])
        sock.close()
        listener.close()


if __name__ == "__main__":
    unittest.main()
