"""The Python service of examples/polyglot: serves calc.calc (generated calc.py) to every client."""

import asyncio
import statistics
import sys

import calc
from ftl_ipc.host import Env
from ftl_ipc.rpc import CallContext


class Calc:
    def add(self, value: calc.Add, context: CallContext) -> calc.AddReply:
        return calc.AddReply(sum=value.a + value.b)

    def stats(self, value: calc.Stats, context: CallContext) -> calc.StatsReply:
        if not value.values:
            raise ValueError("stats of no values")
        return calc.StatsReply(count=len(value.values), mean=statistics.fmean(value.values))

    def shout(self, value: calc.Shout, context: CallContext) -> calc.ShoutReply:
        return calc.ShoutReply(text=f"{value.text.upper()}!")


async def main(env: Env) -> None:
    sessions = set()
    async for client in env.clients():
        # A handler that raises is answered with an error reply; on_error keeps serving.
        serving = calc.serve_calc(client, Calc(), on_error=lambda e, kind: print(f"{kind}: {e}", file=sys.stderr))
        task = asyncio.ensure_future(serving)
        sessions.add(task)
        task.add_done_callback(sessions.discard)
