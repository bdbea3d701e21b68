"""The Python calc server of test/rust/interop.test.ts: listens where told (a socket path, or
host:port with an optional secret), prints the bound address as a JSON line and serves calc
(examples/polyglot's handlers) to every client."""

import asyncio
import json
import sys

import calc
from calc_service import Calc
from ftl_ipc.connection import listen


async def main() -> None:
    where = sys.argv[1]
    secret = sys.argv[2] if len(sys.argv) > 2 else None
    address = where if "/" in where else (where.rsplit(":", 1)[0], int(where.rsplit(":", 1)[1]))
    listener = await listen(address, secret=secret)
    bound = listener.address
    bound = bound if isinstance(bound, str) else f"{bound[0]}:{bound[1]}"
    print(json.dumps({"listening": bound}), flush=True)
    async for channel in listener:
        asyncio.ensure_future(calc.serve_calc(channel, Calc()))


asyncio.run(main())
