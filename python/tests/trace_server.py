"""The Python end of test/observe/tracing.test.ts: serves rpctest.work on a socket path and
prints, as a JSON line, the trace context each `add` request carried."""

from __future__ import annotations

import asyncio
import json
import sys

from ftl_ipc.connection import listen
from ftl_ipc.rpc import CallContext

from .generated import rpctest


class Handlers:
    def add(self, value: rpctest.Add, context: CallContext) -> rpctest.AddReply:
        print(json.dumps({"traceparent": context.traceparent}), flush=True)
        return rpctest.AddReply(value=value.value + 1)

    def hang(self, value: rpctest.Hang, context: CallContext) -> rpctest.HangReply:
        raise NotImplementedError

    def noisy(self, value: rpctest.Noisy, context: CallContext) -> rpctest.NoisyReply:
        raise NotImplementedError


async def main(path: str) -> None:
    listener = await listen(path)
    print(json.dumps({"listening": path}), flush=True)
    channel = await listener.accept()
    listener.close()
    await rpctest.WorkServer(channel).serve(Handlers())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
