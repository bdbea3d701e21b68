"""Runs the TypeScript peer (test/python/peer.ts, built into dist/) as a real child process."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

ROOT = pathlib.Path(__file__).parents[2]
PEER = ROOT / "dist" / "test" / "python" / "peer.js"
NODE = os.environ.get("FTL_IPC_NODE", "node")


class Peer:
    """One TypeScript peer process: JSON lines from its stdout, commands to its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> Peer:
        if not PEER.exists():
            raise RuntimeError(f"{PEER} is missing: run `npm run build` first")
        proc = await asyncio.create_subprocess_exec(
            NODE, str(PEER), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def line(self, timeout: float = 20) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise EOFError("the TypeScript peer ended without saying more")
        return json.loads(raw)

    def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())

    async def address(self) -> str | tuple[str, int]:
        a = (await self.line())["address"]
        return a["path"] if "path" in a else (a["host"], a["port"])

    async def exit_code(self, timeout: float = 20) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def socket_path(name: str = "s") -> str:
    """A path in a fresh private directory (the TypeScript listener refuses an open one), removed
    when the tests exit."""
    folder = tempfile.mkdtemp(prefix="ftl-ipc-py-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return os.path.join(folder, name)
