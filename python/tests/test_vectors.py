"""The shared vectors of test/vectors/vectors.json against the Python codec and the Python
generated from test/vectors/vectors.yaml: values to bytes, bytes to values, and every frame
that must be rejected, with the field path it must name."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import types
import typing
import unittest
from enum import IntEnum
from typing import Any

from ftl_ipc import IpcError
from ftl_ipc.wire import (
    CallDescriptor,
    ChannelHandle,
    Handle,
    Message,
    MessageDescriptor,
    MessageTable,
    PipeConsumer,
    RELAY_ERROR_TYPE,
    PipeProducer,
    decode_message,
    decode_reply,
    decode_request,
    encode_cancel,
    encode_error_reply,
    encode_message,
    encode_reply,
    with_deadline,
    with_trace,
)

from .generated import vectors as generated

VECTORS = json.loads(
    (pathlib.Path(__file__).parents[2] / "test" / "vectors" / "vectors.json").read_text("utf-8")
)


class FakeChannel(ChannelHandle):
    closed = False

    def close(self) -> None:
        self.closed = True


class FakeProducer(PipeProducer):
    pass


class FakeConsumer(PipeConsumer):
    pass


KINDS: dict[str, type[Handle]] = {"channel": FakeChannel, "producer": FakeProducer, "consumer": FakeConsumer}


def handles_of(kinds: list[str]) -> list[Handle]:
    return [KINDS[k]() for k in kinds]


def descriptor(name: str) -> Any:
    return getattr(generated, name.rsplit(".", 1)[1].upper())


def from_json(hint: Any, js: Any, handles: list[Handle]) -> Any:
    """A value of the generated types from the vectors' language-neutral JSON."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return from_json(inner, js, handles)
    if origin is list:
        (item,) = typing.get_args(hint)
        return [from_json(item, x, handles) for x in js]
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{k: from_json(hints[k], v, handles) for k, v in js.items()})
    if isinstance(hint, type) and issubclass(hint, Handle):
        return handles[js["handle"]]
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return hint(js)
    if hint is bytes:
        return bytes.fromhex(js)
    if hint is float:
        return float(js)
    if hint is int:
        return int(js)
    return js


def value_of(d: Any, reply: bool, js: dict[str, Any], handles: list[Handle]) -> Any:
    cls = typing.get_type_hints(d.decode_reply if reply else d.decode)["return"]
    return from_json(cls, js, handles)


def server_table() -> MessageTable:
    return MessageTable(
        [v for v in vars(generated).values() if isinstance(v, MessageDescriptor)]
    )


def spaced(data: bytes) -> str:
    h = data.hex()
    return " ".join(h[i : i + 16] for i in range(0, len(h), 16))


class ValidVectors(unittest.TestCase):
    def test_every_valid_vector_encodes_and_decodes(self) -> None:
        self.assertGreater(len(VECTORS["valid"]), 0)
        for v in VECTORS["valid"]:
            with self.subTest(v["name"]):
                d = descriptor(v["message"])
                handles = handles_of(v.get("handles", []))
                reply = v.get("reply", False)
                message = Message(int(v["type"], 16), bytes.fromhex(v["hex"]), handles)
                if "error" in v:
                    result = decode_reply(d, message)
                    self.assertIsInstance(result, IpcError)
                    assert isinstance(result, IpcError)
                    self.assertEqual(result.code, "REMOTE_ERROR")
                    self.assertIn(v["error"]["text"], result.message)
                    self.assertIn(v["error"]["code"], result.message)
                    encoded = encode_error_reply(d, v["txid"], RuntimeError(v["error"]["text"]))
                    self.assertEqual(spaced(encoded.data), v["hex"])
                    continue
                value = value_of(d, reply, v["value"], handles)
                if reply:
                    encoded = encode_reply(d, v["txid"], value)
                else:
                    encoded = encode_message(d, value, v.get("txid", 0))
                self.assertEqual(f"0x{encoded.type:08x}", v["type"])
                self.assertEqual(spaced(encoded.data), v["hex"])
                self.assertEqual(encoded.data[3], v["flags"])
                self.assertEqual(encoded.handles, handles)
                decoded = decode_reply(d, message) if reply else decode_message(d, message)
                # repr, so that NaN equals NaN and -0.0 differs from 0.0.
                self.assertEqual(repr(decoded), repr(value))


class InvalidVectors(unittest.TestCase):
    def assert_rejected(self, v: dict[str, Any], decode: Any) -> None:
        d = descriptor(v["message"])
        message = Message(d.id, bytes.fromhex(v["hex"]), handles_of(v.get("handles", [])))
        with self.assertRaises(IpcError) as caught:
            decode(message)
        self.assertEqual(caught.exception.code, "INVALID_MESSAGE")
        self.assertTrue(
            caught.exception.message.startswith(f"{v['path']}: "),
            f"{caught.exception.message!r} should name {v['path']}",
        )

    def test_every_invalid_vector_is_rejected_naming_its_path(self) -> None:
        table = server_table()
        self.assertGreater(len(VECTORS["invalid"]), 0)
        for v in VECTORS["invalid"]:
            with self.subTest(v["name"]):
                self.assert_rejected(v, table.decode)

    def test_every_invalid_control_vector_is_rejected_by_a_server(self) -> None:
        table = server_table()
        self.assertGreater(len(VECTORS["invalid_control"]), 0)
        for v in VECTORS["invalid_control"]:
            with self.subTest(v["name"]):
                self.assert_rejected(v, lambda m: decode_request(table, m))

    def test_a_type_id_the_side_does_not_receive(self) -> None:
        with self.assertRaisesRegex(IpcError, r"\(message\): type id 1 "):
            MessageTable([generated.EMPTY]).decode(Message(1, bytes.fromhex("4649010000000000")))


class ControlVectors(unittest.TestCase):
    def test_every_control_vector(self) -> None:
        table = server_table()
        for v in VECTORS["control"]:
            with self.subTest(v["name"]):
                d: CallDescriptor[Any, Any] = descriptor(v["message"])
                if v["kind"] == "cancel":
                    encoded = encode_cancel(d.id, v["txid"])
                else:
                    value = value_of(d, False, v["value"], [])
                    encoded = encode_message(d, value, v["txid"])
                if "timeout_ms" in v:
                    encoded = with_deadline(encoded, v["timeout_ms"])
                if v.get("traceparent") is not None:
                    encoded = with_trace(encoded, v["traceparent"])
                self.assertEqual(f"0x{encoded.type:08x}", v["type"])
                # A context a server ignores is not one an encoder makes: only its reading is checked.
                if "traceparent" not in v or v["traceparent"] is not None:
                    self.assertEqual(spaced(encoded.data), v["hex"])
                request = decode_request(table, Message(d.id, bytes.fromhex(v["hex"])))
                if v["kind"] == "cancel":
                    self.assertEqual(request.cancel, v["txid"])
                else:
                    self.assertEqual(request.timeout_ms, v.get("timeout_ms"))
                    self.assertEqual(request.traceparent, v.get("traceparent"))
                    assert request.received is not None
                    self.assertEqual(request.received.txid, v["txid"])
                    self.assertEqual(repr(request.received.value), repr(value))


class Encoding(unittest.TestCase):
    def test_values_that_do_not_fit_are_invalid_argument_naming_the_field(self) -> None:
        bad = [
            (generated.SCALARS, "i8", 128),
            (generated.SCALARS, "u64", -1),
            (generated.SCALARS, "u8", True),
            (generated.SCALARS, "flag", 1),
            (generated.SCALARS, "f64", "1"),
        ]
        good = dict(flag=False, i8=0, i16=0, i32=0, i64=0, u8=0, u16=0, u32=0, u64=0, f32=0.0, f64=0.0)
        for d, name, value in bad:
            with self.subTest(name):
                with self.assertRaises(IpcError) as caught:
                    encode_message(d, generated.Scalars(**{**good, name: value}))
                self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
                self.assertTrue(caught.exception.message.startswith(f"{name}: "))

    def test_string_capacity_counts_utf8_bytes_and_lone_surrogates_are_refused(self) -> None:
        for text in ["é" * 9, "\ud800"]:
            with self.subTest(text):
                with self.assertRaises(IpcError) as caught:
                    encode_message(generated.TEXT, generated.Text(text=text, blob=b""))
                self.assertEqual(caught.exception.code, "INVALID_ARGUMENT")
                self.assertTrue(caught.exception.message.startswith("text: "))

    def test_nested_paths_and_enums(self) -> None:
        value = generated.Containers(
            points=[generated.Point(x=0, y=2**31)],
            matrix=[],
            labeled=generated.Labeled(point=generated.Point(x=0, y=0)),
            vec=generated.shared.Vec(z=0.0),
        )
        with self.assertRaisesRegex(IpcError, r"^INVALID_ARGUMENT: points\[0\]\.y: "):
            encode_message(generated.CONTAINERS, value)
        value.points = []
        value.color = 3  # type: ignore[assignment]
        with self.assertRaisesRegex(IpcError, r"^INVALID_ARGUMENT: color: "):
            encode_message(generated.CONTAINERS, value)

    def test_float32_too_large_rounds_to_infinity_as_in_typescript(self) -> None:
        good = dict(flag=False, i8=0, i16=0, i32=0, i64=0, u8=0, u16=0, u32=0, u64=0, f64=0.0)
        data = encode_message(generated.SCALARS, generated.Scalars(f32=1e300, **good)).data
        decoded = decode_message(generated.SCALARS, Message(generated.SCALARS.id, data))
        self.assertEqual(decoded.f32, float("inf"))


if __name__ == "__main__":
    unittest.main()


class RelayErrorReply(unittest.TestCase):
    def test_a_relay_error_reply_fails_the_call_with_the_code_it_carries(self) -> None:
        d = next(v for v in vars(generated).values() if isinstance(v, CallDescriptor))
        relay = dataclasses.replace(d, reply_id=RELAY_ERROR_TYPE)
        for code, expected in (("PEER_CLOSED", "PEER_CLOSED"), ("NOT_A_CODE", "REMOTE_ERROR")):
            with self.subTest(code):
                encoded = encode_error_reply(relay, 9, IpcError(code, "job#2 (pid 7) was killed"))
                result = decode_reply(d, Message(encoded.type, encoded.data, []))
                assert isinstance(result, IpcError)
                self.assertEqual(result.code, expected)
                self.assertEqual(result.message, f"{d.name}: job#2 (pid 7) was killed")
