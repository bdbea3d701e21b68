"""Generated Python RPC (rpctest.work from test/wire/rpc.yaml) against the TypeScript client
and server generated from the same IDL, over Unix sockets and TCP with a secret."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ftl_ipc import IpcError
from ftl_ipc.connection import connect, listen
from ftl_ipc.rpc import CallContext

from .generated import rpctest
from .peer import socket_path
from .test_socket import PeerTest


class PythonWork:
    """The same handlers as test/wire/rpc-peer.ts, in Python."""

    def __init__(self, server: rpctest.WorkServer) -> None:
        self.server = server
        self.contexts: list[CallContext] = []

    def add(self, value: rpctest.Add, context: CallContext) -> rpctest.AddReply:
        if value.value == -1:
            raise ValueError("-1 is unlucky")
        return rpctest.AddReply(value=value.value + 1)

    async def hang(self, value: rpctest.Hang, context: CallContext) -> rpctest.HangReply:
        self.contexts.append(context)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self.server.aborted_wait(
                rpctest.Aborted(tag=value.tag, code="ABORTED", deadline=context.deadline is not None)
            )
            raise
        raise AssertionError("not reached")

    async def noisy(self, value: rpctest.Noisy, context: CallContext) -> rpctest.NoisyReply:
        await self.server.note_wait(rpctest.Note(value=value.value))
        return rpctest.NoisyReply(value=value.value)


class PythonClientTypeScriptServer(PeerTest):
    async def check(self, tcp: bool, secret: str | None) -> None:
        extra = ["--secret", secret] if secret else []
        p, address = await self.ts_listener("rpc-serve", *extra, tcp=tcp)
        client = rpctest.WorkClient(await connect(address, **({"secret": secret} if secret else {})))
        self.assertEqual([(await client.add(rpctest.Add(value=i))).value for i in range(20)], list(range(1, 21)))
        many = await asyncio.gather(*(client.add(rpctest.Add(value=i)) for i in range(64)))
        self.assertEqual([r.value for r in many], list(range(1, 65)))
        # A timeout travels as a deadline, and the client cancels when it passes.
        started = time.monotonic()
        with self.assertRaises(IpcError) as caught:
            await client.hang(rpctest.Hang(tag=1), timeout=0.2)
        self.assertEqual(caught.exception.code, "TIMEOUT")
        self.assertLess(time.monotonic() - started, 5)
        pushed = await asyncio.wait_for(client.recv(), 10)
        self.assertEqual((pushed.kind, pushed.value.tag, pushed.value.deadline), ("aborted", 1, True))
        # Cancelling the calling task sends a cancel: the TypeScript handler's signal fires.
        task = asyncio.ensure_future(client.hang(rpctest.Hang(tag=2)))
        await asyncio.sleep(0.05)
        task.cancel()
        pushed = await asyncio.wait_for(client.recv(), 10)
        self.assertEqual((pushed.value.tag, pushed.value.deadline), (2, False))
        # A push before the reply.
        self.assertEqual((await client.noisy(rpctest.Noisy(value=4))).value, 4)
        note = await client.recv()
        self.assertEqual((note.kind, note.value.value), ("note", 4))
        # The reply does not fit an int32 at the TypeScript server: an error reply for that call
        # only; the server goes on serving.
        with self.assertRaises(IpcError) as caught:
            await client.add(rpctest.Add(value=2**31 - 1))
        self.assertEqual(caught.exception.code, "REMOTE_ERROR")
        self.assertIn("INVALID_ARGUMENT", caught.exception.message)
        self.assertEqual((await client.add(rpctest.Add(value=7))).value, 8)
        client.close()
        self.assertEqual(await p.line(), {"served": True})
        self.assertEqual(await p.exit_code(), 0)

    async def test_calls_over_a_unix_socket(self) -> None:
        await self.check(tcp=False, secret=None)

    async def test_calls_over_tcp_with_a_secret(self) -> None:
        await self.check(tcp=True, secret="py-ts")


class TypeScriptClientPythonServer(PeerTest):
    async def check(self, tcp: bool) -> dict[str, Any]:
        if tcp:
            listener = await listen(("127.0.0.1", 0), secret="ts-py")
            p = await self.peer("rpc-call", "--connect", str(listener.address[1]), "--secret", "ts-py")
        else:
            path = socket_path()
            listener = await listen(path)
            p = await self.peer("rpc-call", "--connect", path)
        server = rpctest.WorkServer(await listener.accept())
        work = PythonWork(server)
        failures: list[tuple[str, str]] = []
        # With on_error a failed handler is answered and serving goes on (without it, it stops).
        serving = asyncio.ensure_future(server.serve(work, on_error=lambda e, kind: failures.append((kind, str(e)))))
        said = await p.line()
        await asyncio.wait_for(serving, 10)  # returns once the client closed
        listener.close()
        self.assertNotIn("error", said)
        self.assertEqual(await p.exit_code(), 0)
        self.assertEqual(said["sums"], list(range(1, 65)))
        self.assertEqual(failures, [("add", "-1 is unlucky")])
        self.assertTrue(said["failed"].startswith("REMOTE_ERROR"), said["failed"])
        self.assertIn("-1 is unlucky", said["failed"])
        self.assertIn("HANDLER_FAILED", said["failed"])
        self.assertEqual(said["timedOut"], "TIMEOUT")
        self.assertEqual(said["aborted"]["value"], {"tag": 5, "code": "ABORTED", "deadline": True})
        self.assertEqual(said["cancelled"], "ABORTED")
        self.assertEqual(said["abortedToo"]["value"], {"tag": 6, "code": "ABORTED", "deadline": False})
        self.assertEqual(said["noisy"], {"value": 9})
        self.assertEqual(said["note"]["value"], {"value": 9})
        deadline = work.contexts[0].deadline
        assert deadline is not None
        self.assertLess(abs(deadline - time.time()), 30)
        return said

    async def test_a_typescript_client_calls_a_python_server_over_a_unix_socket(self) -> None:
        await self.check(tcp=False)

    async def test_a_typescript_client_calls_a_python_server_over_tcp_with_a_secret(self) -> None:
        await self.check(tcp=True)
