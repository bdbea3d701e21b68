"""The Python server's own cost per call, without sockets or a peer: batches of 64 ping
requests fed to a Connection over a fake transport, served by the generated PingServer, with
credits returned as a peer would. Prints the median ns per call of 7 runs, of CPU time (less
disturbed by other processes than wall time) and of wall time; with `profile`, a cProfile of
one run. Run: PYTHONPATH=python python3 bench/python/server_cost.py [profile]"""

import asyncio
import cProfile
import pathlib
import pstats
import sys
import time
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import ping
from ftl_ipc.connection import Connection, make_options, FRAME_HEADER, HELLO, HELLO_BYTES, MAGIC, VERSION
from ftl_ipc.wire import encode_message

class FakeTransport:
    """Counts what would be written."""

    def __init__(self): self.n = 0
    def write(self, d): self.n += len(d)
    def get_extra_info(self, k): return None
    def get_write_buffer_size(self): return 0
    def is_closing(self): return False
    def close(self): pass
    def abort(self): pass

class H:
    def ping(self, v, c): return ping.PingReply(value=v.value + 1)

async def main(prof):
    loop = asyncio.get_running_loop()
    opened = loop.create_future()
    conn = Connection(False, make_options(), opened)
    t = FakeTransport()
    conn._transport = t
    conn._peer_nonce = b''
    hello = HELLO.pack(MAGIC, VERSION, 0, b'\0'*32, 1 << 20, 64 << 20, 1 << 16, 64, 0, 0)
    conn.data_received(FRAME_HEADER.pack(HELLO_BYTES, 1, 0, 0, 0, 0) + hello)
    root = await opened
    server = ping.PingServer(root)
    task = asyncio.ensure_future(server.serve(H()))
    await asyncio.sleep(0)
    frames = []
    for i in range(64):
        m = encode_message(ping.PING, ping.Ping(value=i), i + 1)
        frames.append(FRAME_HEADER.pack(len(m.data), 3, 0, 0, 0, m.type) + m.data)
    batch = b''.join(frames)
    N = 500
    runs = []
    for _ in range(1 if prof else 7):
        if prof: prof.enable()
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(N):
            conn.data_received(batch)
            await asyncio.sleep(0)
            # Credits back, as a peer that took the 64 replies (12 bytes each) would return them.
            conn.data_received(FRAME_HEADER.pack(4, 4, 0, 0, 0, 64) + (64*12).to_bytes(4, 'little'))
        runs.append(((time.process_time() - c0) / (N * 64) * 1e9, (time.perf_counter() - t0) / (N * 64) * 1e9))
        if prof: prof.disable()
    cpu = sorted(r[0] for r in runs)
    wall = sorted(r[1] for r in runs)
    print(f"{cpu[len(cpu) // 2]:.0f} ns CPU per call ({cpu[0]:.0f}-{cpu[-1]:.0f}), {wall[len(wall) // 2]:.0f} ns wall")

prof = cProfile.Profile() if len(sys.argv) > 1 else None
asyncio.run(main(prof))
if prof: pstats.Stats(prof).sort_stats('tottime').print_stats(18)
