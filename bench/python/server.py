"""The Python side of bench/python.bench.ts: the handler `v + 1` on an int32, served either by
the generated ftl-ipc PingServer on a Unix socket (`ftl <path>`) or as newline-delimited JSON
over stdio (`json`), what people write by hand today."""

import asyncio
import json
import sys

import ping
from ftl_ipc.connection import listen


class Handlers:
    def ping(self, value: ping.Ping, context: object) -> ping.PingReply:
        return ping.PingReply(value=value.value + 1)


async def ftl(path: str) -> None:
    listener = await listen(path)
    print("ready", flush=True)
    async for ch in listener:
        asyncio.ensure_future(ping.serve_ping(ch, Handlers()))


def json_lines() -> None:
    out = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        out.write(json.dumps({"id": request["id"], "value": request["value"] + 1}) + "\n")
        out.flush()


if __name__ == "__main__":
    if sys.argv[1] == "ftl":
        asyncio.run(ftl(sys.argv[2]))
    else:
        json_lines()
