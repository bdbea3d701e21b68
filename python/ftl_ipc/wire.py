"""The wire format of docs/wire-format.md: header, payload codec, error replies and the RPC
control flags. Generated modules encode and decode through Writer and Reader, so every check
lives here once, with the same paths and codes as the TypeScript codec."""

from __future__ import annotations

import math
import struct
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from .errors import IPC_ERROR_CODES, IpcError

MAGIC: Final = b"FI"
VERSION: Final = 1
HEADER_BYTES: Final = 8
FLAG_REPLY: Final = 0x01
FLAG_ERROR: Final = 0x02
FLAG_CANCEL: Final = 0x04
FLAG_DEADLINE: Final = 0x08
FLAG_TRACE: Final = 0x10
KNOWN_FLAGS: Final = FLAG_REPLY | FLAG_ERROR
DEADLINE_BYTES: Final = 4
TRACE_BYTES: Final = 26
ERROR_CODE_CAPACITY: Final = 64
ERROR_TEXT_CAPACITY: Final = 1024
#: The first word of a plain request or push (magic, version, no flags) and of a reply: what
#: the generated fixed-size codecs of `MessageDescriptor.decode_fixed` read and write.
PLAIN_HEAD: Final = b"FI\x01\x00"
REPLY_HEAD: Final = b"FI\x01\x01"

_u16 = struct.Struct("<H")
_u32 = struct.Struct("<I")
_header = struct.Struct("<2sBBI")
_formats = {
    "i8": (struct.Struct("<b"), -(2**7), 2**7 - 1),
    "u8": (struct.Struct("<B"), 0, 2**8 - 1),
    "i16": (struct.Struct("<h"), -(2**15), 2**15 - 1),
    "u16": (_u16, 0, 2**16 - 1),
    "i32": (struct.Struct("<i"), -(2**31), 2**31 - 1),
    "u32": (_u32, 0, 2**32 - 1),
    "i64": (struct.Struct("<q"), -(2**63), 2**63 - 1),
    "u64": (struct.Struct("<Q"), 0, 2**64 - 1),
}
_i8, _i16, _i32, _i64, _u64 = (_formats[k][0] for k in ("i8", "i16", "i32", "i64", "u64"))
_f32 = struct.Struct("<f")
_f64 = struct.Struct("<d")

Field = str | int


class Handle:
    """What a message moves beside its data: a channel endpoint or a data pipe end."""

    def close(self) -> None:
        """Gives the handle up; the peer of its other end sees it closed."""


class ChannelHandle(Handle):
    """The class a `channel` field carries (the socket transport's Channel is one)."""


class PipeProducer(Handle):
    """The writing end of a data pipe (a `pipe` field with `end: producer`)."""


class PipeConsumer(Handle):
    """The reading end of a data pipe (a `pipe` field with `end: consumer`)."""


PIPE_END_CLASSES: Final[dict[str, type[Handle]]] = {
    "producer": PipeProducer,
    "consumer": PipeConsumer,
}


@dataclass(slots=True)
class Message:
    """What a transport moves: the type id, the data (header and payload) and the handles."""

    type: int
    data: bytes
    handles: list[Handle] = field(default_factory=list)


def _format_path(parts: Sequence[Field]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += part if out == "" else f".{part}"
    return out or "(message)"


def _shown(value: object) -> str:
    """A wrong value for an error message, without running any of its code."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else f"{value[:40]}…")
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _invalid(problem: str) -> IpcError:
    return IpcError("INVALID_MESSAGE", f"(message): {problem}")


T = TypeVar("T")
R = TypeVar("R")


class Reader:
    """Decodes one untrusted message. Every read checks the bytes left first, every length is
    checked against its capacity and against what remains before anything is allocated."""

    __slots__ = ("_data", "_handles", "_path", "_pos", "_next_handle", "flags", "txid")

    def __init__(self, message: Message) -> None:
        data = message.data
        self._data = data
        self._handles = message.handles
        self._path: list[Field] = []
        self._pos = HEADER_BYTES
        self._next_handle = 0
        if len(data) < HEADER_BYTES:
            self._fail(None, f"the {HEADER_BYTES}-byte header is cut short at {len(data)} bytes")
        magic, version, flags, txid = _header.unpack_from(data, 0)
        if magic != MAGIC:
            self._fail(None, f'bad magic 0x{magic.hex()}, expected 0x4649 ("FI")')
        if version != VERSION:
            self._fail(None, f"unsupported version {version}, this side speaks {VERSION}")
        if flags & ~KNOWN_FLAGS:
            self._fail(None, f"unknown flags 0x{flags:02x}")
        if (flags & (FLAG_ERROR | FLAG_REPLY)) == FLAG_ERROR:
            self._fail(None, f"flags 0x{flags:02x}: ERROR is only valid with REPLY")
        self.flags: int = flags
        self.txid: int = txid

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)

    def _fail(self, field: Field | None, problem: str) -> Any:
        parts = self._path if field is None else [*self._path, field]
        raise IpcError("INVALID_MESSAGE", f"{_format_path(parts)}: {problem}")

    def _take(self, field: Field, n: int) -> int:
        at = self._pos
        if at + n > len(self._data):
            self._fail(field, f"needs {n} bytes at offset {at}, but the message ends at {len(self._data)}")
        self._pos = at + n
        return at

    def end(self) -> None:
        """Checks that the payload was used up exactly, handles included."""
        left = len(self._data) - self._pos
        if left:
            self._fail(None, f"{left} unexpected bytes after the last field")
        if self._next_handle != len(self._handles):
            self._fail(None, f"carries {len(self._handles)} handles but its fields use {self._next_handle}")

    def bool(self, field: Field) -> bool:
        v = self._data[self._take(field, 1)]
        if v > 1:
            self._fail(field, f"bool must be 0 or 1, got {v}")
        return v == 1

    def _fixed(self, fmt: struct.Struct, field: Field) -> Any:
        at = self._pos
        end = at + fmt.size
        if end > len(self._data):
            self._take(field, fmt.size)
        self._pos = end
        return fmt.unpack_from(self._data, at)[0]

    def i8(self, field: Field) -> int:
        return self._fixed(_i8, field)

    def u8(self, field: Field) -> int:
        return self._data[self._take(field, 1)]

    def i16(self, field: Field) -> int:
        return self._fixed(_i16, field)

    def u16(self, field: Field) -> int:
        return self._fixed(_u16, field)

    def i32(self, field: Field) -> int:
        return self._fixed(_i32, field)

    def u32(self, field: Field) -> int:
        return self._fixed(_u32, field)

    def i64(self, field: Field) -> int:
        return self._fixed(_i64, field)

    def u64(self, field: Field) -> int:
        return self._fixed(_u64, field)

    def f32(self, field: Field) -> float:
        return self._fixed(_f32, field)

    def f64(self, field: Field) -> float:
        return self._fixed(_f64, field)

    def _length(self, field: Field, capacity: int, unit: str, min_item_bytes: int) -> int:
        n = self.u32(field)
        if n > capacity:
            self._fail(field, f"{n} {unit} exceed the capacity of {capacity}")
        left = len(self._data) - self._pos
        # Checked before allocating: a length the remaining bytes cannot hold is a lie.
        if n * min_item_bytes > left:
            self._fail(field, f"{n} {unit} cannot fit in the {left} bytes left")
        return n

    def string(self, field: Field, capacity: int) -> str:
        n = self._length(field, capacity, "bytes", 1)
        at = self._take(field, n)
        try:
            # Python's strict UTF-8 refuses overlong forms, surrogates and code points past U+10FFFF.
            return str(self._data[at : at + n], "utf-8")
        except UnicodeDecodeError:
            return self._fail(field, "string is not valid UTF-8")

    def bytes(self, field: Field, capacity: int) -> bytes:
        n = self._length(field, capacity, "bytes", 1)
        at = self._take(field, n)
        return bytes(self._data[at : at + n])

    def channel(self, field: Field) -> Any:
        return self._handle(field, ChannelHandle)

    def pipe(self, field: Field, end: str) -> Any:
        return self._handle(field, PIPE_END_CLASSES[end])

    def _handle(self, field: Field, cls: type[Handle]) -> Handle:
        index = self.u16(field)
        if index != self._next_handle:
            self._fail(field, f"handle index {index} out of order, expected {self._next_handle}")
        if index >= len(self._handles):
            self._fail(field, f"handle index {index} but the message carries {len(self._handles)} handles")
        handle = self._handles[index]
        if not isinstance(handle, cls):
            self._fail(field, f"handle {index} is a {type(handle).__name__}, not a {cls.__name__}")
        self._next_handle += 1
        return handle

    def enum(self, field: Field, values: Callable[[int], T]) -> T:
        v = self.u32(field)
        try:
            return values(v)
        except ValueError:
            return self._fail(field, f"{v} is not a value of the enum")

    def present(self, field: Field) -> bool:
        v = self._data[self._take(field, 1)]
        if v > 1:
            self._fail(field, f"presence byte must be 0 or 1, got {v}")
        return v == 1

    def tail_present(self, field: Field) -> bool:
        """For the optional fields that end a message: a message that ends before one leaves it absent."""
        return self._pos != len(self._data) and self.present(field)

    def struct(self, field: Field, body: Callable[[Reader], T]) -> T:
        self._path.append(field)
        v = body(self)
        self._path.pop()
        return v

    def array(self, field: Field, capacity: int, min_item_bytes: int, item: Callable[[Reader, int], T]) -> list[T]:
        n = self._length(field, capacity, "items", min_item_bytes)
        self._path.append(field)
        out = [item(self, i) for i in range(n)]
        self._path.pop()
        return out


class Writer:
    """Encodes one message, validating every value on the way; fields are named only for errors."""

    __slots__ = ("_buf", "_handles", "_path", "_absent_tail")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._handles: list[Handle] = []
        self._path: list[Field] = []
        self._absent_tail = -1

    def message(self, type_id: int, txid: int, flags: int, body: Callable[[Writer, T], None], value: T) -> Message:
        self._buf = bytearray(_header.pack(MAGIC, VERSION, flags, txid))
        self._handles = []
        self._path = []
        self._absent_tail = -1
        body(self, value)
        buf = self._buf
        if self._absent_tail >= 0:
            del buf[self._absent_tail :]
        return Message(type_id, bytes(buf), self._handles)

    def _fail(self, field: Field, value: object, expected: str) -> Any:
        path = _format_path([*self._path, field])
        raise IpcError("INVALID_ARGUMENT", f"{path}: expected {expected}, got {_shown(value)}")

    def bool(self, field: Field, v: bool) -> None:
        if not isinstance(v, bool):
            self._fail(field, v, "a bool")
        self._buf.append(1 if v else 0)

    def _int(self, kind: str, field: Field, v: int) -> None:
        fmt, low, high = _formats[kind]
        # bool is an int in Python, but never a valid integer field.
        if type(v) is not int or not low <= v <= high:
            self._fail(field, v, f"an int{kind[1:]} ({low} to {high})" if kind[0] == "i" else f"a uint{kind[1:]} ({low} to {high})")
        self._buf += fmt.pack(v)

    def i8(self, field: Field, v: int) -> None:
        self._int("i8", field, v)

    def u8(self, field: Field, v: int) -> None:
        self._int("u8", field, v)

    def i16(self, field: Field, v: int) -> None:
        self._int("i16", field, v)

    def u16(self, field: Field, v: int) -> None:
        self._int("u16", field, v)

    def i32(self, field: Field, v: int) -> None:
        self._int("i32", field, v)

    def u32(self, field: Field, v: int) -> None:
        self._int("u32", field, v)

    def i64(self, field: Field, v: int) -> None:
        self._int("i64", field, v)

    def u64(self, field: Field, v: int) -> None:
        self._int("u64", field, v)

    def _float(self, field: Field, v: float) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            self._fail(field, v, "a float")
        return float(v)

    def f32(self, field: Field, v: float) -> None:
        x = self._float(field, v)
        try:
            self._buf += _f32.pack(x)
        except OverflowError:
            # Too large for binary32 rounds to infinity, as JavaScript's setFloat32 does.
            self._buf += _f32.pack(math.copysign(math.inf, x))

    def f64(self, field: Field, v: float) -> None:
        self._buf += _f64.pack(self._float(field, v))

    def string(self, field: Field, v: str, capacity: int) -> None:
        if not isinstance(v, str) or len(v) > capacity:
            self._fail(field, v, f"a str of at most {capacity} UTF-8 bytes")
        try:
            encoded = v.encode("utf-8")
        except UnicodeEncodeError:
            return self._fail(field, v, "a well-formed str (no lone surrogates)")
        if len(encoded) > capacity:
            self._fail(field, v, f"a str of at most {capacity} UTF-8 bytes (it has {len(encoded)})")
        self._buf += _u32.pack(len(encoded))
        self._buf += encoded

    def bytes(self, field: Field, v: bytes, capacity: int) -> None:
        if not isinstance(v, bytes | bytearray | memoryview) or len(v) > capacity:
            self._fail(field, v, f"bytes of at most {capacity}")
        self._buf += _u32.pack(len(v))
        self._buf += v

    def channel(self, field: Field, v: Any) -> None:
        self._handle(field, v, ChannelHandle)

    def pipe(self, field: Field, v: Any, end: str) -> None:
        self._handle(field, v, PIPE_END_CLASSES[end])

    def _handle(self, field: Field, v: Handle, cls: type[Handle]) -> None:
        if not isinstance(v, cls):
            self._fail(field, v, f"a {cls.__name__}")
        index = len(self._handles)
        if index > 0xFFFF:
            self._fail(field, index + 1, "at most 65536 handles in a message")
        self._handles.append(v)
        self._buf += _u16.pack(index)

    def enum(self, field: Field, v: int, values: Collection[int]) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or v not in values:
            self._fail(field, v, f"one of the enum's values {', '.join(str(int(x)) for x in values)}")
        self._buf += _u32.pack(int(v))

    def present(self, v: object) -> bool:
        """Writes the presence byte of an optional field and tells whether to write the value."""
        present = v is not None
        self._buf.append(1 if present else 0)
        return present

    def tail_present(self, v: object) -> bool:
        """Like present, for the optional fields that end a message: absent ones at the very end
        are left out, so appending optional fields keeps old messages valid."""
        at = len(self._buf)
        present = self.present(v)
        if present:
            self._absent_tail = -1
        elif self._absent_tail < 0:
            self._absent_tail = at
        return present

    def struct(self, field: Field, v: T, body: Callable[[Writer, T], None]) -> None:
        if v is None or isinstance(v, bool | int | float | str | bytes | list):
            self._fail(field, v, "a struct")
        self._path.append(field)
        body(self, v)
        self._path.pop()

    def array(self, field: Field, v: Sequence[T], capacity: int, item: Callable[[Writer, T, int], None]) -> None:
        if not isinstance(v, list | tuple) or len(v) > capacity:
            self._fail(field, v, f"a list of at most {capacity} items")
        self._buf += _u32.pack(len(v))
        self._path.append(field)
        for i, x in enumerate(v):
            item(self, x, i)
        self._path.pop()


@dataclass(frozen=True, slots=True)
class MessageDescriptor(Generic[T]):
    """Everything the runtime needs to send and receive one message type; generated per message."""

    name: str
    kind: str
    id: int
    encode: Callable[[Writer, T], None]
    decode: Callable[[Reader], T]
    #: For a message whose fields are all integers and floats, and so of one size: the whole
    #: message (header, payload) in one unpack from a buffer at an offset, giving its first
    #: header word, txid and value. The caller checks the size and that word; anything else
    #: goes through `decode`.
    decode_fixed: Callable[[bytes | bytearray, int], tuple[bytes, int, T]] | None = None
    fixed_size: int = 0


@dataclass(frozen=True, slots=True)
class CallDescriptor(MessageDescriptor[T], Generic[T, R]):
    """A call: the request is the message itself, the reply has its own type id and fields."""

    reply_id: int = 0
    encode_reply: Callable[[Writer, R], None] | None = None
    decode_reply: Callable[[Reader], R] | None = None
    max_reply_bytes: int = 0
    #: For a reply of integers and floats: its data in one pack, or None when a value is not a
    #: plain one in range (then `encode_reply` checks it and names the problem).
    encode_reply_fixed: Callable[[int, R], bytes | None] | None = None


_writer = Writer()


def encode_message(d: MessageDescriptor[T], value: T, txid: int = 0) -> Message:
    return _writer.message(d.id, txid, 0, d.encode, value)


def encode_reply(d: CallDescriptor[Any, R], txid: int, value: R) -> Message:
    assert d.encode_reply is not None
    return _writer.message(d.reply_id, txid, FLAG_REPLY, d.encode_reply, value)


@dataclass(slots=True)
class ErrorBody:
    code: str
    text: str


def _encode_error_body(w: Writer, v: ErrorBody) -> None:
    w.string("code", v.code, ERROR_CODE_CAPACITY)
    w.string("text", v.text, ERROR_TEXT_CAPACITY)


def _decode_error_body(r: Reader) -> ErrorBody:
    return ErrorBody(r.string("code", ERROR_CODE_CAPACITY), r.string("text", ERROR_TEXT_CAPACITY))


def _cut_utf8(text: str, capacity: int) -> str:
    return text.encode("utf-8", "replace")[:capacity].decode("utf-8", "ignore")


def encode_error_reply(d: CallDescriptor[Any, Any], txid: int, error: BaseException, stack: bool = False) -> Message:
    """A reply saying the call failed: its IpcError code or HANDLER_FAILED, and its text (with
    `stack` its traceback), cut to fit."""
    code = error.code if isinstance(error, IpcError) else "HANDLER_FAILED"
    if stack:
        text = "".join(traceback.format_exception(error))
    else:
        text = error.message if isinstance(error, IpcError) else str(error)
    body = ErrorBody(_cut_utf8(code, ERROR_CODE_CAPACITY), _cut_utf8(text, ERROR_TEXT_CAPACITY))
    return _writer.message(d.reply_id, txid, FLAG_REPLY | FLAG_ERROR, _encode_error_body, body)


def _finish(r: Reader, body: Callable[[Reader], T]) -> T:
    value = body(r)
    r.end()
    return value


def decode_message(d: MessageDescriptor[T], message: Message) -> T:
    """Decodes a message known to be of type `d` (not a reply), checking its header and its end."""
    if message.type != d.id:
        raise _invalid(f"type id {message.type} is not {d.name} ({d.id})")
    r = Reader(message)
    if r.is_reply:
        raise _invalid(f"{d.name} arrived flagged as a reply")
    return _finish(r, d.decode)


#: The type id of a relay's error reply (docs/wire-format.md): it fails a call it could not
#: deliver, or whose server died holding it, without knowing the call's reply type.
RELAY_ERROR_TYPE: Final = 0


def decode_reply(d: CallDescriptor[Any, R], message: Message) -> R | IpcError:
    """The returns of a reply, or for an error reply an IpcError REMOTE_ERROR (returned, not
    raised, so callers tell it from a malformed reply, which raises INVALID_MESSAGE)."""
    if message.type == RELAY_ERROR_TYPE and len(message.data) > 3 and message.data[3] & FLAG_ERROR:
        # A relay (the supervisor spreading a service's instances) failed the call: its own code.
        relayed = _finish(Reader(message), _decode_error_body)
        code = relayed.code if relayed.code in IPC_ERROR_CODES else "REMOTE_ERROR"
        return IpcError(code, f"{d.name}: {relayed.text}")
    if message.type != d.reply_id:
        raise _invalid(f"type id {message.type} is not the reply to {d.name} ({d.reply_id})")
    r = Reader(message)
    if not r.is_reply:
        raise _invalid(f"the reply to {d.name} is not flagged as a reply")
    if not r.flags & FLAG_ERROR:
        assert d.decode_reply is not None
        return _finish(r, d.decode_reply)
    body = _finish(r, _decode_error_body)
    return IpcError("REMOTE_ERROR", f"{d.name} failed at the peer: {body.text} ({body.code})")


@dataclass(slots=True)
class Received(Generic[T]):
    """One message as received: its kind, its transaction id (0 for a push) and its value."""

    kind: str
    txid: int
    value: T


class MessageTable:
    """The messages one side of a protocol may receive, looked up by type id."""

    def __init__(self, descriptors: Sequence[MessageDescriptor[Any]]) -> None:
        self._by_id = {d.id: d for d in descriptors}
        #: The fixed-size ones, for a server's fast path: id -> (descriptor, is a call).
        self.fixed = {
            d.id: (d, isinstance(d, CallDescriptor)) for d in descriptors if d.decode_fixed is not None
        }

    def get(self, type_id: int) -> MessageDescriptor[Any] | None:
        return self._by_id.get(type_id)

    def decode(self, message: Message) -> Received[Any]:
        """Decodes a request or a push; replies are not in a table."""
        d = self._by_id.get(message.type)
        if d is None:
            raise _invalid(f"type id {message.type} is not a message this side receives")
        r = Reader(message)
        if r.is_reply:
            raise _invalid(f"{d.name} arrived flagged as a reply")
        call = isinstance(d, CallDescriptor)
        if not call and r.txid != 0:
            raise _invalid(f"{d.name} is a push but carries transaction id {r.txid}")
        if call and r.txid == 0:
            raise _invalid(f"{d.name} is a call but carries no transaction id")
        return Received(d.kind, r.txid, _finish(r, d.decode))


def discard(message: Message) -> None:
    """A message that failed to decode still owns its handles: close them so nothing leaks."""
    for handle in message.handles:
        handle.close()


# RPC control (docs/wire-format.md, "Cancel and deadline"), recognised before decoding so the
# codec itself keeps refusing these flags anywhere else.


def encode_cancel(type_id: int, txid: int) -> Message:
    return Message(type_id, _header.pack(MAGIC, VERSION, FLAG_CANCEL, txid))


def with_deadline(message: Message, remaining_ms: float) -> Message:
    """A copy of an encoded request with the deadline flag and the remaining milliseconds appended."""
    data = bytearray(message.data)
    data[3] |= FLAG_DEADLINE
    data += _u32.pack(min(0xFFFFFFFF, max(0, math.ceil(remaining_ms))))
    return Message(message.type, bytes(data), message.handles)


def with_trace(message: Message, traceparent: str) -> Message:
    """A copy of an encoded request with the trace flag and the W3C `traceparent` header's
    fields appended in binary (version, trace id, parent id, flags: 26 bytes)."""
    parts = traceparent.split("-")
    if len(parts) != 4 or [len(p) for p in parts] != [2, 32, 16, 2]:
        raise IpcError("INVALID_ARGUMENT", f"traceparent must be 00-<32 hex>-<16 hex>-<2 hex>, got {traceparent!r}")
    try:
        trace = bytes.fromhex("".join(parts))
    except ValueError:
        raise IpcError("INVALID_ARGUMENT", f"traceparent must be hex digits and dashes, got {traceparent!r}") from None
    data = bytearray(message.data)
    data[3] |= FLAG_TRACE
    return Message(message.type, bytes(data + trace), message.handles)


def _traceparent(trace: bytes) -> str | None:
    """The context as W3C Trace Context asks a receiver to take it: version 0 and ids that are
    not all zeros, else none (the call is served as without one)."""
    if trace[0] != 0 or not any(trace[1:17]) or not any(trace[17:25]):
        return None
    return f"00-{trace[1:17].hex()}-{trace[17:25].hex()}-{trace[25]:02x}"


@dataclass(slots=True)
class Control:
    """A received message's control flags: the txid a cancel stops (0 if none), the message
    to decode with any deadline and trace context taken off, that deadline's milliseconds and
    the trace context as a `traceparent` header."""

    cancel: int
    message: Message
    timeout_ms: int | None
    traceparent: str | None = None


def read_control(message: Message) -> Control:
    """Only a cancel's header is checked here; a request's header is checked by the decoder."""
    data = message.data
    flags = data[3] if len(data) >= HEADER_BYTES else 0
    if flags == FLAG_CANCEL:
        if data[0:2] != MAGIC or data[2] != VERSION:
            raise _invalid("a cancel with a bad magic or version")
        if len(data) != HEADER_BYTES:
            raise _invalid(f"a cancel carries no payload, got {len(data) - HEADER_BYTES} bytes")
        if message.handles:
            raise _invalid(f"a cancel carries no handles, got {len(message.handles)}")
        txid = _u32.unpack_from(data, 4)[0]
        if txid == 0:
            raise _invalid("a cancel without a transaction id")
        return Control(txid, message, None)
    if not flags & (FLAG_DEADLINE | FLAG_TRACE):
        return Control(0, message, None)
    # The trace context comes last, after the deadline: taken off the end in that order.
    end = len(data)
    traceparent = None
    if flags & FLAG_TRACE:
        if end < HEADER_BYTES + TRACE_BYTES:
            raise _invalid(f"a trace context needs {TRACE_BYTES} bytes after the header, got {end}")
        end -= TRACE_BYTES
        traceparent = _traceparent(bytes(data[end : end + TRACE_BYTES]))
    timeout_ms = None
    if flags & FLAG_DEADLINE:
        if end < HEADER_BYTES + DEADLINE_BYTES:
            raise _invalid(f"a deadline needs {DEADLINE_BYTES} bytes after the header, got {end}")
        end -= DEADLINE_BYTES
        timeout_ms = _u32.unpack_from(data, end)[0]
    plain = data[:3] + bytes([flags & ~(FLAG_DEADLINE | FLAG_TRACE)]) + data[4:end]
    return Control(0, Message(message.type, plain, message.handles), timeout_ms, traceparent)


@dataclass(slots=True)
class Request:
    """What a server received: a cancel (the transaction id it stops, `received` None), or a
    request or push with the milliseconds its deadline gives it."""

    cancel: int
    received: Received[Any] | None
    timeout_ms: int | None
    #: The received message's descriptor (None for a cancel).
    descriptor: MessageDescriptor[Any] | None = None
    #: The caller's W3C trace context, when the request carried a valid one.
    traceparent: str | None = None


def decode_request(table: MessageTable, message: Message) -> Request:
    """Decodes what a client sent, control flags included, as a server must check them."""
    data = message.data
    if len(data) >= HEADER_BYTES and data[3] == 0:  # the common case: no control flags
        return Request(0, table.decode(message), None, table.get(message.type))
    control = read_control(message)
    d = table.get(message.type)
    if control.cancel:
        if not isinstance(d, CallDescriptor):
            raise _invalid(f"a cancel for type id {message.type}, which is not a call this side receives")
        return Request(control.cancel, None, None)
    if control.timeout_ms is not None and d is not None and not isinstance(d, CallDescriptor):
        raise _invalid(f"a deadline on {d.name}, which is a push")
    return Request(0, table.decode(control.message), control.timeout_ms, d, control.traceparent)
