"""A Python child of test/rust/interop.test.ts: on its channel `c` arrives a message carrying a
channel end (it came from TypeScript through a Rust process); it answers three messages on that
end, then sends the end back on `c`, and exits once `c` closes."""

import asyncio

from ftl_ipc.connection import flush_sockets, parent_channels
from ftl_ipc.wire import Message


async def main() -> None:
    c = (await parent_channels())["c"]
    carrier = await c.recv()
    end = carrier.handles[0]
    for _ in range(3):
        m = await end.recv()
        await end.send_wait(Message(m.type, b"python: " + m.data))
    await c.send_wait(Message(carrier.type, b"back", [end]))
    async for _ in c:
        pass
    await flush_sockets()


asyncio.run(main())
