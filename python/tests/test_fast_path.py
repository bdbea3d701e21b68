"""The server's fast path for plain fixed-size requests (generated struct codecs, served from
the channel's sink): it must answer exactly as the general path does, and leave to it every
request and reply it does not handle plainly."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import sys
import unittest

from ftl_ipc import IpcError
from ftl_ipc.connection import channel_over_socket, events
from ftl_ipc.rpc import CallContext
from ftl_ipc.wire import PLAIN_HEAD, Message, encode_message, encode_reply

from .generated import rpctest, vectors

# The example's calc.py: strings and arrays, so served by the sink through the general decoder.
sys.path.insert(0, str(pathlib.Path(__file__).parents[2] / "examples" / "polyglot"))
import calc  # noqa: E402


class Work:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def add(self, value: rpctest.Add, context: CallContext) -> object:
        self.seen.append(value.value)
        if value.value == -1:
            raise ValueError("-1 is unlucky")
        if value.value == -7:
            return rpctest.AddReply(value=True)  # a bool is not an int32: the Writer says so
        return rpctest.AddReply(value=value.value + 1)  # 2**31 - 1 overflows

    async def hang(self, value: rpctest.Hang, context: CallContext) -> rpctest.HangReply:
        await asyncio.sleep(0.01 * value.tag)
        return rpctest.HangReply()


class FailingHang(Work):
    async def hang(self, value: rpctest.Hang, context: CallContext) -> rpctest.HangReply:
        await asyncio.sleep(0)
        raise ValueError(f"{value.tag} is unlucky")


class GeneratedFixedCodecs(unittest.TestCase):
    def test_they_agree_with_the_general_codec(self) -> None:
        m = encode_message(rpctest.ADD, rpctest.Add(value=-5), txid=9)
        self.assertEqual(rpctest.ADD.fixed_size, len(m.data))
        assert rpctest.ADD.decode_fixed is not None
        self.assertEqual(rpctest.ADD.decode_fixed(m.data), (PLAIN_HEAD, 9, rpctest.Add(value=-5)))
        empty = encode_message(vectors.EMPTY, vectors.Empty())
        assert vectors.EMPTY.decode_fixed is not None
        self.assertEqual(vectors.EMPTY.decode_fixed(empty.data), (PLAIN_HEAD, 0, vectors.Empty()))
        fast = rpctest.ADD.encode_reply_fixed
        assert fast is not None
        self.assertEqual(fast(3, rpctest.AddReply(value=-2)), encode_reply(rpctest.ADD, 3, rpctest.AddReply(value=-2)).data)
        # What the Writer would refuse is left to it.
        for bad in (True, 2**31, 1.0, None):
            self.assertIsNone(fast(3, rpctest.AddReply(value=bad)))  # type: ignore[arg-type]
        self.assertIsNone(fast(3, object()))  # type: ignore[arg-type]


class FastPath(unittest.IsolatedAsyncioTestCase):
    async def pair(self, **server_options: object) -> tuple[rpctest.WorkClient, rpctest.WorkServer]:
        a, b = socket.socketpair()
        client_ch, server_ch = await asyncio.gather(
            channel_over_socket(a, True), channel_over_socket(b, False, **server_options)
        )
        return rpctest.WorkClient(client_ch), rpctest.WorkServer(server_ch)

    async def test_calls_failures_and_async_handlers(self) -> None:
        client, server = await self.pair()
        work = Work()
        failures: list[tuple[str, str]] = []
        serving = asyncio.ensure_future(server.serve(work, on_error=lambda e, kind: failures.append((kind, str(e)))))
        replies = await asyncio.gather(*(client.add(rpctest.Add(value=i)) for i in range(200)))
        self.assertEqual([r.value for r in replies], list(range(1, 201)))
        self.assertEqual(work.seen, list(range(200)))
        # Async handlers on the fast path still get tasks, and answer as they end.
        await asyncio.gather(*(client.hang(rpctest.Hang(tag=t)) for t in (3, 1, 2)))
        # A deadline sets a flag: the general path serves it, with the deadline.
        self.assertEqual((await client.add(rpctest.Add(value=1), timeout=5)).value, 2)
        for value, code in ((-1, "HANDLER_FAILED"), (-7, "INVALID_ARGUMENT"), (2**31 - 1, "INVALID_ARGUMENT")):
            with self.assertRaises(IpcError) as caught:
                await client.add(rpctest.Add(value=value))
            self.assertEqual(caught.exception.code, "REMOTE_ERROR")
            self.assertIn(code, caught.exception.message)
        self.assertEqual([kind for kind, _ in failures], ["add", "add", "add"])
        # Every request was received once and its credit returned: the client's window is whole.
        self.assertEqual(server.channel.stats.received, 200 + 3 + 1 + 3)
        self.assertEqual(server.channel.stats.queued_messages, 0)
        client.close()
        await asyncio.wait_for(serving, 5)

    async def test_a_failed_handler_fails_only_its_call_and_serving_goes_on(self) -> None:
        client, server = await self.pair()
        published: list[dict[str, object]] = []
        events.subscribe("rpc:error", published.append)
        self.addCleanup(events.unsubscribe, "rpc:error", published.append)
        serving = asyncio.ensure_future(server.serve(FailingHang()))
        for call in (client.add(rpctest.Add(value=-1)), client.hang(rpctest.Hang(tag=1))):
            with self.assertRaises(IpcError) as caught:
                await asyncio.wait_for(call, 10)  # a server that stopped would leave it hanging
            self.assertEqual(caught.exception.code, "REMOTE_ERROR")
            self.assertRegex(caught.exception.message, r"failed at the peer: \S+ is unlucky \(HANDLER_FAILED\)$")
        self.assertEqual((await asyncio.wait_for(client.add(rpctest.Add(value=1)), 10)).value, 2)
        self.assertEqual(
            [(e["kind"], str(e["error"]), e["action"], e["channel"] is server.channel) for e in published],
            [("add", "-1 is unlucky", "continue", True), ("hang", "1 is unlucky", "continue", True)],
        )
        self.assertFalse(serving.done())
        client.close()
        await asyncio.wait_for(serving, 5)

    async def test_a_generated_call_carries_the_trace_context_it_is_given(self) -> None:
        client, server = await self.pair()
        seen: list[str | None] = []

        class Traced(Work):
            def add(self, value: rpctest.Add, context: CallContext) -> object:
                seen.append(context.traceparent)
                return super().add(value, context)

        serving = asyncio.ensure_future(server.serve(Traced()))
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        self.assertEqual((await asyncio.wait_for(client.add(rpctest.Add(value=1), traceparent=parent), 10)).value, 2)
        self.assertEqual((await asyncio.wait_for(client.add(rpctest.Add(value=2)), 10)).value, 3)
        self.assertEqual(seen, [parent, None])
        client.close()
        await asyncio.wait_for(serving, 5)

    async def test_a_bad_timeout_is_refused_before_anything_is_sent(self) -> None:
        client, server = await self.pair()
        serving = asyncio.ensure_future(server.serve(Work()))
        channel = server.channel
        for bad in (-5, float("nan"), float("inf"), 3e6, "1", True):
            with self.assertRaises(IpcError) as caught:
                await client.add(rpctest.Add(value=1), timeout=bad)  # type: ignore[arg-type]
            self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
            self.assertIn(f"got {bad!r}", caught.exception.message)
            for wait in (channel.send_wait(Message(1, b""), bad),
                         channel.writable(0, bad)):  # type: ignore[arg-type]
                with self.assertRaises(IpcError) as caught:
                    await wait
                self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
        self.assertEqual(channel.stats.received, 0)
        self.assertEqual((await asyncio.wait_for(client.add(rpctest.Add(value=1), timeout=5), 10)).value, 2)
        client.close()
        await asyncio.wait_for(serving, 5)

    async def test_stop_on_error_stops_serving_with_the_failure(self) -> None:
        client, server = await self.pair()
        serving = asyncio.ensure_future(server.serve(Work(), stop_on_error=True))
        self.assertEqual((await client.add(rpctest.Add(value=1))).value, 2)
        with self.assertRaises(IpcError) as caught:
            await asyncio.wait_for(client.add(rpctest.Add(value=-1)), 10)
        self.assertIn("HANDLER_FAILED", caught.exception.message)
        with self.assertRaises(ValueError):
            await asyncio.wait_for(serving, 5)
        self.assertTrue(server.channel.closed)
        client.close()

    async def test_reply_stack_sends_the_traceback(self) -> None:
        client, server = await self.pair()
        serving = asyncio.ensure_future(server.serve(Work(), reply_stack=True))
        with self.assertRaises(IpcError) as caught:
            await asyncio.wait_for(client.add(rpctest.Add(value=-1)), 10)
        self.assertRegex(caught.exception.message, r"Traceback \(most recent call last\):\n[\s\S]*, in add\n")
        client.close()
        await asyncio.wait_for(serving, 5)

    async def test_an_on_error_that_raises_stops_serving_with_its_error(self) -> None:
        for value in (rpctest.Add(value=-1), rpctest.Hang(tag=1)):  # a synchronous and an async handler
            client, server = await self.pair()

            def on_error(error: BaseException, kind: str) -> None:
                raise RuntimeError(f"on_error gave up on {kind}")

            serving = asyncio.ensure_future(server.serve(FailingHang(), on_error=on_error))
            with self.assertRaises(IpcError) as caught:
                await asyncio.wait_for(client.add(value) if isinstance(value, rpctest.Add) else client.hang(value), 10)
            self.assertIn("HANDLER_FAILED", caught.exception.message)  # answered before on_error ran
            with self.assertRaises(RuntimeError):
                await asyncio.wait_for(serving, 5)
            self.assertTrue(server.channel.closed)
            client.close()

    async def test_requests_beyond_the_concurrency_wait_their_turn(self) -> None:
        client, server = await self.pair()
        serving = asyncio.ensure_future(server.serve(Work(), concurrency=2))
        # Async handlers fill the two slots; the fast path then leaves adds to the queue, in order.
        hangs = [asyncio.ensure_future(client.hang(rpctest.Hang(tag=5))) for _ in range(2)]
        await asyncio.sleep(0.005)
        adds = await asyncio.gather(*(client.add(rpctest.Add(value=i)) for i in range(10)))
        self.assertEqual([r.value for r in adds], list(range(1, 11)))
        await asyncio.gather(*hangs)
        client.close()
        await asyncio.wait_for(serving, 5)


    async def test_variable_size_requests_through_the_general_decoder(self) -> None:
        a, b = socket.socketpair()
        client_ch, server_ch = await asyncio.gather(channel_over_socket(a, True), channel_over_socket(b, False))
        client = calc.CalcClient(client_ch)

        class Calc:
            def shout(self, value: calc.Shout, context: CallContext) -> calc.ShoutReply:
                return calc.ShoutReply(text=value.text.upper())

            def stats(self, value: calc.Stats, context: CallContext) -> calc.StatsReply:
                return calc.StatsReply(count=len(value.values), mean=sum(value.values) / len(value.values))

            def add(self, value: calc.Add, context: CallContext) -> calc.AddReply:
                return calc.AddReply(sum=value.a + value.b)  # may overflow an int64

        failures: list[str] = []
        serving = asyncio.ensure_future(
            calc.serve_calc(server_ch, Calc(), on_error=lambda e, kind: failures.append(kind))
        )
        words = [f"word {i} é" for i in range(100)]
        replies = await asyncio.gather(*(client.shout(calc.Shout(text=w)) for w in words))
        self.assertEqual([r.text for r in replies], [w.upper() for w in words])
        self.assertEqual((await client.stats(calc.Stats(values=[1.0, 2.0, 6.0]))).mean, 3.0)
        with self.assertRaises(IpcError) as caught:
            await client.stats(calc.Stats(values=[]))
        self.assertIn("HANDLER_FAILED", caught.exception.message)
        with self.assertRaises(IpcError) as caught:
            await client.add(calc.Add(a=2**62, b=2**62))
        self.assertIn("INVALID_ARGUMENT", caught.exception.message)
        self.assertEqual(failures, ["stats", "add"])
        self.assertEqual(server_ch.stats.received, 103)
        client.close()
        await asyncio.wait_for(serving, 5)


if __name__ == "__main__":
    unittest.main()
