"""A child process started by spawnProcess (see test/python/python.test.ts): it echoes what
arrives on its `jobs` channel, reversed and with the type plus one, until the parent closes."""

import asyncio

from ftl_ipc.connection import flush_sockets, parent_channels
from ftl_ipc.wire import Message


async def main() -> None:
    channels = await parent_channels()
    jobs = channels["jobs"]
    async for m in jobs:
        await jobs.send_wait(Message(m.type + 1, m.data[::-1]))
    jobs.close()
    await flush_sockets()


asyncio.run(main())
