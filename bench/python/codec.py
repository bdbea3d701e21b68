"""Encode and decode rates of the Python codec for bench.sample.reading (bench/bench.yaml)
against the standard library's json for the same values (the payload as base64, since JSON has
no bytes). Prints one JSON line: operations per second, median and range of 5 rounds.
Run: PYTHONPATH=python python3 bench/python/codec.py"""

import base64
import json
import statistics
import sys
import time

import bench
from ftl_ipc.wire import Message, decode_message, encode_message

VALUE = bench.Reading(id=123456, offset=-42, port=8080, priority=3, label="x" * 64, payload=bytes(range(256)) * 4)
AS_DICT = {
    "id": 123456,
    "offset": -42,
    "port": 8080,
    "priority": 3,
    "label": "x" * 64,
    "payload": base64.b64encode(VALUE.payload).decode(),
}


def rate(fn, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        n += 200
    return n / elapsed


def main() -> None:
    seconds = 0.1 if "--quick" in sys.argv else 0.5
    encoded = encode_message(bench.READING, VALUE)
    message = Message(encoded.type, encoded.data)
    text = json.dumps(AS_DICT)
    cases = {
        "ftl encode": lambda: encode_message(bench.READING, VALUE),
        "ftl decode": lambda: decode_message(bench.READING, message),
        "json encode": lambda: json.dumps(AS_DICT),
        "json decode": lambda: json.loads(text),
        "json decode + base64": lambda: base64.b64decode(json.loads(text)["payload"]),
    }
    rounds: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(5):
        for name, fn in cases.items():
            rounds[name].append(rate(fn, seconds))
    out = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in rounds.items()}
    out["bytes"] = {"ftl": len(encoded.data), "json": len(text)}
    print(json.dumps(out))


main()
