"""The program a `python:` service of `ftl-ipc run` runs in (`python3 -m ftl_ipc.host`): it takes
the startup channel from the supervisor, builds the service's Env, runs the module's
`async def main(env)` and exits with 0 when it returns, 1 when it raises; the same startup
protocol as src/runtime/host.ts."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from .connection import Channel, flush_sockets, parent_channels
from .errors import IpcError
from .wire import Message

DEPENDENCY, NEW_CLIENT, STOP, STATS = 0x46544C01, 0x46544C02, 0x46544C03, 0x46544C04


class Env:
    """What a service gets: its name and config, its dependencies' channels, its clients, and
    `stopping`, set at shutdown (stop taking work and return from main)."""

    def __init__(self, name: str, config: Any, dependencies: list[str]) -> None:
        self.name = name
        self.config = config
        self.stopping = asyncio.Event()
        self._dependencies: dict[str, Channel | None] = dict.fromkeys(dependencies)
        self._clients: asyncio.Queue[Channel | None] = asyncio.Queue()
        self._all_clients: list[tuple[Channel, str]] = []
        self.ready = asyncio.Event()
        if not dependencies:
            self.ready.set()

    def channel(self, name: str) -> Channel:
        """The channel to dependency `name`."""
        if name not in self._dependencies:
            raise IpcError("INVALID_ARGUMENT", f"{name!r} is not a dependency of {self.name}; it has {list(self._dependencies)}")
        ch = self._dependencies[name]
        assert ch is not None  # main starts only once every dependency has one
        return ch

    async def clients(self) -> AsyncIterator[Channel]:
        """For servers: a channel per connecting client; ends at shutdown."""
        while True:
            ch = await self._clients.get()
            if ch is None:
                self._clients.put_nowait(None)
                return
            yield ch

    def set_dependency(self, name: str, ch: Channel) -> None:
        if name not in self._dependencies:
            ch.close()
            return
        self._dependencies[name] = ch
        if all(c is not None for c in self._dependencies.values()):
            self.ready.set()

    def add_client(self, name: str, ch: Channel) -> None:
        self._all_clients.append((ch, name))
        self._clients.put_nowait(ch)

    def stop(self) -> None:
        self.stopping.set()
        self._clients.put_nowait(None)

    def report(self) -> list[dict[str, Any]]:
        out = [{"name": f"dep:{n}", "stats": _camel(asdict(c.stats))} for n, c in self._dependencies.items() if c is not None]
        out += [{"name": f"client:{n}", "stats": _camel(asdict(c.stats))} for c, n in self._all_clients]
        return out

    def close_all(self) -> None:
        for c in self._dependencies.values():
            if c is not None:
                c.close()
        for c, _ in self._all_clients:
            c.close()


def _camel(stats: dict[str, int]) -> dict[str, int]:
    return {k.split("_")[0] + "".join(p.title() for p in k.split("_")[1:]): v for k, v in stats.items()}


async def _listen(startup: Channel, env: Env, grace_s: float) -> None:
    try:
        async for m in startup:
            name = m.data.decode("utf-8", "replace")
            ch = m.handles[0] if m.handles else None
            if m.type == STOP:
                env.stop()
            elif not isinstance(ch, Channel):
                continue
            elif m.type == DEPENDENCY:
                env.set_dependency(name, ch)
            elif m.type == NEW_CLIENT:
                env.add_client(name, ch)
            else:
                ch.close()
    except IpcError:
        pass
    # The supervisor is gone: this service must not outlive it.
    env.stop()
    await asyncio.sleep(grace_s)
    os._exit(1)


async def _stats(startup: Channel, env: Env, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        data = json.dumps(env.report()).encode()
        try:
            startup.send(Message(STATS, data), on_full="drop")
        except IpcError:
            return


async def host() -> int:
    boot = json.loads(os.environ["FTL_IPC_BOOT"])
    # Ctrl-C reaches the whole process group; the supervisor decides when this service stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    startup = (await parent_channels())["startup"]
    env = Env(boot["service"], boot["config"], boot["dependencies"])
    listening = asyncio.ensure_future(_listen(startup, env, boot["graceMs"] / 1000))
    stats = asyncio.ensure_future(_stats(startup, env, boot["statsIntervalMs"] / 1000))
    code = 0
    try:
        await env.ready.wait()
        path = boot["module"]
        sys.path.insert(0, os.path.dirname(path))  # its generated modules sit beside it
        spec = importlib.util.spec_from_file_location("__ftl_service__", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        main = getattr(module, "main", None)
        if main is None:
            raise TypeError(f"{path} has no function main(env)")
        result = main(env)
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        traceback.print_exc()  # this is the service's own stderr, prefixed by the supervisor
        code = 1
    stats.cancel()
    listening.cancel()
    env.close_all()
    startup.close()
    try:
        await asyncio.wait_for(flush_sockets(), 1)
    except TimeoutError:
        pass
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(host()))
