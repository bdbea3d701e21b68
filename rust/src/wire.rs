//! The wire format of docs/wire-format.md: header, payload codec, error replies and the RPC
//! control flags. Generated code encodes and decodes through `Writer` and `Reader`, so every
//! check lives here once, with the paths and codes of the TypeScript and Python codecs.

use crate::error::{ErrorCode, IpcError, Result};
use crate::transport::{Channel, PipeEnd};
use std::fmt;

pub const MAGIC: [u8; 2] = *b"FI";
pub const VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 8;
pub const FLAG_REPLY: u8 = 0x01;
pub const FLAG_ERROR: u8 = 0x02;
pub const FLAG_CANCEL: u8 = 0x04;
pub const FLAG_DEADLINE: u8 = 0x08;
pub const FLAG_TRACE: u8 = 0x10;
const KNOWN_FLAGS: u8 = FLAG_REPLY | FLAG_ERROR;
pub const DEADLINE_BYTES: usize = 4;
pub const TRACE_BYTES: usize = 26;
pub const ERROR_CODE_CAPACITY: usize = 64;
pub const ERROR_TEXT_CAPACITY: usize = 1024;

/// What a message moves beside its data: a channel end or a data pipe end.
#[derive(Debug)]
pub enum Handle {
    Channel(Channel),
    Producer(PipeEnd),
    Consumer(PipeEnd),
}

impl Handle {
    fn class(&self) -> &'static str {
        match self {
            Handle::Channel(_) => "Channel",
            Handle::Producer(_) => "DataPipeProducer",
            Handle::Consumer(_) => "DataPipeConsumer",
        }
    }
}

/// What a transport moves: the type id, the data (header and payload) and the handles.
#[derive(Debug, Default)]
pub struct Message {
    pub type_id: u32,
    pub data: Vec<u8>,
    pub handles: Vec<Handle>,
}

impl Message {
    pub fn new(type_id: u32, data: Vec<u8>) -> Message {
        Message { type_id, data, handles: Vec::new() }
    }
}

/// One step of a field path: a field name or an array index.
#[derive(Clone, Copy, Debug)]
pub enum Field {
    Name(&'static str),
    Index(usize),
}

impl From<&'static str> for Field {
    fn from(name: &'static str) -> Field {
        Field::Name(name)
    }
}

impl From<usize> for Field {
    fn from(i: usize) -> Field {
        Field::Index(i)
    }
}

fn format_path(parts: &[Field], last: Option<Field>) -> String {
    let mut out = String::new();
    for part in parts.iter().chain(last.iter()) {
        match part {
            Field::Index(i) => out.push_str(&format!("[{}]", i)),
            Field::Name(n) if out.is_empty() => out.push_str(n),
            Field::Name(n) => {
                out.push('.');
                out.push_str(n);
            }
        }
    }
    if out.is_empty() {
        out.push_str("(message)");
    }
    out
}

fn invalid(problem: impl fmt::Display) -> IpcError {
    IpcError::new(ErrorCode::InvalidMessage, format!("(message): {}", problem))
}

/// The kind of data pipe end a `pipe` field declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeKind {
    Producer,
    Consumer,
}

/// Decodes one untrusted message. Every read checks the bytes left first; every length is
/// checked against its capacity and against what remains before anything is allocated.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    handles: Vec<Option<Handle>>,
    next_handle: usize,
    path: Vec<Field>,
    pub flags: u8,
    pub txid: u32,
}

macro_rules! read_fixed {
    ($($name:ident: $t:ty),*) => {$(
        pub fn $name(&mut self, field: impl Into<Field>) -> Result<$t> {
            const N: usize = std::mem::size_of::<$t>();
            let at = self.take(field.into(), N)?;
            let mut b = [0u8; N];
            b.copy_from_slice(&self.data[at..at + N]);
            Ok(<$t>::from_le_bytes(b))
        }
    )*};
}

impl<'a> Reader<'a> {
    /// Checks the header; the handles become the Reader's (those no field takes are dropped,
    /// and so closed, with it).
    pub fn new(data: &'a [u8], handles: Vec<Handle>) -> Result<Reader<'a>> {
        if data.len() < HEADER_BYTES {
            return Err(invalid(format!(
                "the {}-byte header is cut short at {} bytes",
                HEADER_BYTES,
                data.len()
            )));
        }
        if data[0..2] != MAGIC {
            return Err(invalid(format!(
                "bad magic 0x{:02x}{:02x}, expected 0x4649 (\"FI\")",
                data[0], data[1]
            )));
        }
        if data[2] != VERSION {
            return Err(invalid(format!(
                "unsupported version {}, this side speaks {}",
                data[2], VERSION
            )));
        }
        let flags = data[3];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(invalid(format!("unknown flags 0x{:02x}", flags)));
        }
        if flags & (FLAG_ERROR | FLAG_REPLY) == FLAG_ERROR {
            return Err(invalid(format!("flags 0x{:02x}: ERROR is only valid with REPLY", flags)));
        }
        let txid = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        Ok(Reader {
            data,
            pos: HEADER_BYTES,
            handles: handles.into_iter().map(Some).collect(),
            next_handle: 0,
            path: Vec::new(),
            flags,
            txid,
        })
    }

    pub fn is_reply(&self) -> bool {
        self.flags & FLAG_REPLY != 0
    }

    fn fail<T>(&self, field: Option<Field>, problem: impl fmt::Display) -> Result<T> {
        Err(IpcError::new(
            ErrorCode::InvalidMessage,
            format!("{}: {}", format_path(&self.path, field), problem),
        ))
    }

    fn take(&mut self, field: Field, n: usize) -> Result<usize> {
        let at = self.pos;
        if n > self.data.len() - at {
            return self.fail(
                Some(field),
                format!(
                    "needs {} bytes at offset {}, but the message ends at {}",
                    n,
                    at,
                    self.data.len()
                ),
            );
        }
        self.pos = at + n;
        Ok(at)
    }

    /// Checks that the payload was used up exactly, handles included.
    pub fn end(&self) -> Result<()> {
        let left = self.data.len() - self.pos;
        if left != 0 {
            return self.fail(None, format!("{} unexpected bytes after the last field", left));
        }
        if self.next_handle != self.handles.len() {
            return self.fail(
                None,
                format!(
                    "carries {} handles but its fields use {}",
                    self.handles.len(),
                    self.next_handle
                ),
            );
        }
        Ok(())
    }

    pub fn bool(&mut self, field: impl Into<Field>) -> Result<bool> {
        let field = field.into();
        let v = self.data[self.take(field, 1)?];
        if v > 1 {
            return self.fail(Some(field), format!("bool must be 0 or 1, got {}", v));
        }
        Ok(v == 1)
    }

    read_fixed!(i8: i8, u8: u8, i16: i16, u16: u16, i32: i32, u32: u32, i64: i64, u64: u64, f32: f32, f64: f64);

    fn length(&mut self, field: Field, capacity: usize, unit: &str, min_item: usize) -> Result<usize> {
        let n = self.u32(field)? as usize;
        if n > capacity {
            return self.fail(
                Some(field),
                format!("{} {} exceed the capacity of {}", n, unit, capacity),
            );
        }
        let left = self.data.len() - self.pos;
        // Checked before allocating: a length the remaining bytes cannot hold is a lie.
        if n.saturating_mul(min_item) > left {
            return self.fail(
                Some(field),
                format!("{} {} cannot fit in the {} bytes left", n, unit, left),
            );
        }
        Ok(n)
    }

    pub fn string(&mut self, field: impl Into<Field>, capacity: usize) -> Result<String> {
        let field = field.into();
        let n = self.length(field, capacity, "bytes", 1)?;
        let at = self.take(field, n)?;
        // std's UTF-8 check refuses overlong forms, surrogates and code points past U+10FFFF.
        match std::str::from_utf8(&self.data[at..at + n]) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => self.fail(Some(field), "string is not valid UTF-8"),
        }
    }

    pub fn bytes(&mut self, field: impl Into<Field>, capacity: usize) -> Result<Vec<u8>> {
        let field = field.into();
        let n = self.length(field, capacity, "bytes", 1)?;
        let at = self.take(field, n)?;
        Ok(self.data[at..at + n].to_vec())
    }

    fn handle(&mut self, field: Field, class: &'static str) -> Result<Handle> {
        let index = self.u16(field)? as usize;
        if index != self.next_handle {
            return self.fail(
                Some(field),
                format!("handle index {} out of order, expected {}", index, self.next_handle),
            );
        }
        if index >= self.handles.len() {
            return self.fail(
                Some(field),
                format!(
                    "handle index {} but the message carries {} handles",
                    index,
                    self.handles.len()
                ),
            );
        }
        let got = self.handles[index].as_ref().map(Handle::class).unwrap_or("");
        if got != class {
            return self.fail(Some(field), format!("handle {} is a {}, not a {}", index, got, class));
        }
        self.next_handle += 1;
        Ok(self.handles[index].take().expect("each handle is taken once"))
    }

    pub fn channel(&mut self, field: impl Into<Field>) -> Result<Channel> {
        match self.handle(field.into(), "Channel")? {
            Handle::Channel(c) => Ok(c),
            _ => unreachable!("class checked"),
        }
    }

    pub fn pipe(&mut self, field: impl Into<Field>, kind: PipeKind) -> Result<PipeEnd> {
        let class = match kind {
            PipeKind::Producer => "DataPipeProducer",
            PipeKind::Consumer => "DataPipeConsumer",
        };
        match self.handle(field.into(), class)? {
            Handle::Producer(p) | Handle::Consumer(p) => Ok(p),
            Handle::Channel(_) => unreachable!("class checked"),
        }
    }

    pub fn enumeration<T>(&mut self, field: impl Into<Field>, from: fn(u32) -> Option<T>) -> Result<T> {
        let field = field.into();
        let v = self.u32(field)?;
        match from(v) {
            Some(t) => Ok(t),
            None => self.fail(Some(field), format!("{} is not a value of the enum", v)),
        }
    }

    pub fn present(&mut self, field: impl Into<Field>) -> Result<bool> {
        let field = field.into();
        let v = self.data[self.take(field, 1)?];
        if v > 1 {
            return self.fail(Some(field), format!("presence byte must be 0 or 1, got {}", v));
        }
        Ok(v == 1)
    }

    /// For the optional fields that end a message: a message that ends before one leaves it absent.
    pub fn tail_present(&mut self, field: impl Into<Field>) -> Result<bool> {
        if self.pos == self.data.len() {
            return Ok(false);
        }
        self.present(field)
    }

    pub fn structure<T>(&mut self, field: impl Into<Field>, body: fn(&mut Reader<'a>) -> Result<T>) -> Result<T> {
        self.path.push(field.into());
        let v = body(self)?;
        self.path.pop();
        Ok(v)
    }

    pub fn array<T>(
        &mut self,
        field: impl Into<Field>,
        capacity: usize,
        min_item_bytes: usize,
        mut item: impl FnMut(&mut Reader<'a>, usize) -> Result<T>,
    ) -> Result<Vec<T>> {
        let field = field.into();
        let n = self.length(field, capacity, "items", min_item_bytes)?;
        self.path.push(field);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(item(self, i)?);
        }
        self.path.pop();
        Ok(out)
    }
}

/// Encodes one message, validating every value on the way; fields are named only for errors.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
    handles: Vec<Handle>,
    path: Vec<Field>,
    absent_tail: Option<usize>,
}

macro_rules! write_fixed {
    ($($name:ident: $t:ty),*) => {$(
        pub fn $name(&mut self, _field: impl Into<Field>, v: $t) -> Result<()> {
            self.buf.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl Writer {
    fn start(type_id: u32, txid: u32, flags: u8) -> Writer {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(flags);
        buf.extend_from_slice(&txid.to_le_bytes());
        let _ = type_id;
        Writer { buf, handles: Vec::new(), path: Vec::new(), absent_tail: None }
    }

    fn finish(mut self, type_id: u32) -> Message {
        if let Some(at) = self.absent_tail {
            self.buf.truncate(at);
        }
        Message { type_id, data: self.buf, handles: self.handles }
    }

    fn fail<T>(&self, field: Field, got: impl fmt::Display, expected: impl fmt::Display) -> Result<T> {
        Err(IpcError::new(
            ErrorCode::InvalidArgument,
            format!("{}: expected {}, got {}", format_path(&self.path, Some(field)), expected, got),
        ))
    }

    pub fn bool(&mut self, _field: impl Into<Field>, v: bool) -> Result<()> {
        self.buf.push(v as u8);
        Ok(())
    }

    write_fixed!(i8: i8, u8: u8, i16: i16, u16: u16, i32: i32, u32: u32, i64: i64, u64: u64, f32: f32, f64: f64);

    pub fn string(&mut self, field: impl Into<Field>, v: &str, capacity: usize) -> Result<()> {
        if v.len() > capacity {
            let shown: String = v.chars().take(40).collect();
            return self.fail(
                field.into(),
                format!("{:?} ({} bytes)", shown, v.len()),
                format!("a string of at most {} UTF-8 bytes", capacity),
            );
        }
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(v.as_bytes());
        Ok(())
    }

    pub fn bytes(&mut self, field: impl Into<Field>, v: &[u8], capacity: usize) -> Result<()> {
        if v.len() > capacity {
            return self.fail(field.into(), format!("{} bytes", v.len()), format!("bytes of at most {}", capacity));
        }
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(v);
        Ok(())
    }

    fn handle(&mut self, field: Field, h: Handle) -> Result<()> {
        let index = self.handles.len();
        if index > 0xffff {
            return self.fail(field, index + 1, "at most 65536 handles in a message");
        }
        self.handles.push(h);
        self.buf.extend_from_slice(&(index as u16).to_le_bytes());
        Ok(())
    }

    pub fn channel(&mut self, field: impl Into<Field>, v: Channel) -> Result<()> {
        self.handle(field.into(), Handle::Channel(v))
    }

    pub fn pipe(&mut self, field: impl Into<Field>, v: PipeEnd, kind: PipeKind) -> Result<()> {
        let h = match kind {
            PipeKind::Producer => Handle::Producer(v),
            PipeKind::Consumer => Handle::Consumer(v),
        };
        self.handle(field.into(), h)
    }

    /// Writes the presence byte of an optional field.
    pub fn present(&mut self, present: bool) -> bool {
        self.buf.push(present as u8);
        present
    }

    /// Like `present`, for the optional fields that end a message: absent ones at the very end
    /// are left out, so appending optional fields keeps old messages valid.
    pub fn tail_present(&mut self, present: bool) -> bool {
        let at = self.buf.len();
        self.present(present);
        if present {
            self.absent_tail = None;
        } else if self.absent_tail.is_none() {
            self.absent_tail = Some(at);
        }
        present
    }

    pub fn structure<T>(&mut self, field: impl Into<Field>, v: T, body: fn(T, &mut Writer) -> Result<()>) -> Result<()> {
        self.path.push(field.into());
        body(v, self)?;
        self.path.pop();
        Ok(())
    }

    pub fn array<T>(
        &mut self,
        field: impl Into<Field>,
        v: Vec<T>,
        capacity: usize,
        mut item: impl FnMut(&mut Writer, usize, T) -> Result<()>,
    ) -> Result<()> {
        let field = field.into();
        if v.len() > capacity {
            return self.fail(
                field,
                format!("a list of {} items", v.len()),
                format!("a list of at most {} items", capacity),
            );
        }
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.path.push(field);
        for (i, x) in v.into_iter().enumerate() {
            item(self, i, x)?;
        }
        self.path.pop();
        Ok(())
    }
}

/// A struct, message or reply: its fields in declared order. Generated for every IDL type.
/// Encoding takes the value, since the channel ends in it move into the message.
pub trait Codec: Sized {
    fn encode(self, w: &mut Writer) -> Result<()>;
    fn decode(r: &mut Reader<'_>) -> Result<Self>;
}

/// A message of a protocol (a push, or a call's request).
pub trait MessageType: Codec {
    const NAME: &'static str;
    const ID: u32;
    const IS_CALL: bool;
}

/// A call: the request is the message itself, the reply has its own type id and fields.
pub trait CallType: MessageType {
    type Reply: Codec;
    const REPLY_ID: u32;
}

pub fn encode_message<M: MessageType>(value: M, txid: u32) -> Result<Message> {
    let mut w = Writer::start(M::ID, txid, 0);
    value.encode(&mut w)?;
    Ok(w.finish(M::ID))
}

pub fn encode_reply<C: CallType>(txid: u32, value: C::Reply) -> Result<Message> {
    let mut w = Writer::start(C::REPLY_ID, txid, FLAG_REPLY);
    value.encode(&mut w)?;
    Ok(w.finish(C::REPLY_ID))
}

/// Cuts `text` to at most `capacity` bytes without splitting a character.
fn cut_utf8(text: &str, capacity: usize) -> &str {
    let mut end = text.len().min(capacity);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A reply saying the call failed: an error code and a text, each cut to fit.
pub fn encode_error_reply(reply_id: u32, txid: u32, code: &str, text: &str) -> Message {
    let mut w = Writer::start(reply_id, txid, FLAG_REPLY | FLAG_ERROR);
    let code = cut_utf8(code, ERROR_CODE_CAPACITY);
    let text = cut_utf8(text, ERROR_TEXT_CAPACITY);
    w.string("code", code, ERROR_CODE_CAPACITY).expect("cut to fit");
    w.string("text", text, ERROR_TEXT_CAPACITY).expect("cut to fit");
    w.finish(reply_id)
}

fn finish<'a, T>(mut r: Reader<'a>, body: fn(&mut Reader<'a>) -> Result<T>) -> Result<T> {
    let v = body(&mut r)?;
    r.end()?;
    Ok(v)
}

/// Decodes a request or push of type `M` (not a reply), checking its header, its transaction id
/// and its end; gives the transaction id (0 for a push) and the value.
pub fn decode_message<M: MessageType>(m: Message) -> Result<(u32, M)> {
    if m.type_id != M::ID {
        return Err(invalid(format!("type id {} is not {} ({})", m.type_id, M::NAME, M::ID)));
    }
    let r = Reader::new(&m.data, m.handles)?;
    if r.is_reply() {
        return Err(invalid(format!("{} arrived flagged as a reply", M::NAME)));
    }
    if !M::IS_CALL && r.txid != 0 {
        return Err(invalid(format!("{} is a push but carries transaction id {}", M::NAME, r.txid)));
    }
    if M::IS_CALL && r.txid == 0 {
        return Err(invalid(format!("{} is a call but carries no transaction id", M::NAME)));
    }
    let txid = r.txid;
    Ok((txid, finish(r, M::decode)?))
}

/// The returns of a reply, or for an error reply an `IpcError` REMOTE_ERROR (the inner `Err`,
/// so callers tell it from a malformed reply, the outer `Err`, INVALID_MESSAGE).
pub fn decode_reply<C: CallType>(m: Message) -> Result<Result<C::Reply>> {
    if m.type_id == RELAY_ERROR_TYPE && m.data.get(3).map_or(false, |f| f & FLAG_ERROR != 0) {
        // A relay (the supervisor spreading a service's instances) failed the call: its own code.
        let (code, text) = finish(Reader::new(&m.data, m.handles)?, error_body)?;
        let code = ErrorCode::from_name(&code).unwrap_or(ErrorCode::RemoteError);
        return Ok(Err(IpcError::new(code, format!("{}: {}", C::NAME, text))));
    }
    if m.type_id != C::REPLY_ID {
        return Err(invalid(format!(
            "type id {} is not the reply to {} ({})",
            m.type_id,
            C::NAME,
            C::REPLY_ID
        )));
    }
    let r = Reader::new(&m.data, m.handles)?;
    if !r.is_reply() {
        return Err(invalid(format!("the reply to {} is not flagged as a reply", C::NAME)));
    }
    if r.flags & FLAG_ERROR == 0 {
        return Ok(Ok(finish(r, C::Reply::decode)?));
    }
    let (code, text) = finish(r, error_body)?;
    Ok(Err(IpcError::new(
        ErrorCode::RemoteError,
        format!("{} failed at the peer: {} ({})", C::NAME, text, code),
    )))
}

/// The type id of a relay's error reply (docs/wire-format.md): a relay fails a call it could
/// not deliver, or whose server died holding it, without knowing the call's reply type.
pub const RELAY_ERROR_TYPE: u32 = 0;

fn error_body(r: &mut Reader) -> Result<(String, String)> {
    Ok((r.string("code", ERROR_CODE_CAPACITY)?, r.string("text", ERROR_TEXT_CAPACITY)?))
}

// RPC control (docs/wire-format.md, "Cancel and deadline" and "Trace context"), recognised
// before decoding so the codec itself keeps refusing these flags anywhere else.

pub fn encode_cancel(type_id: u32, txid: u32) -> Message {
    let w = Writer::start(type_id, txid, FLAG_CANCEL);
    w.finish(type_id)
}

/// Adds the deadline flag and the milliseconds the call still has to an encoded request.
pub fn with_deadline(m: &mut Message, remaining_ms: u32) {
    m.data[3] |= FLAG_DEADLINE;
    m.data.extend_from_slice(&remaining_ms.to_le_bytes());
}

/// A W3C trace context in binary (version, trace id, parent id, flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext(pub [u8; TRACE_BYTES]);

impl TraceContext {
    /// Parses a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
    pub fn parse(traceparent: &str) -> Result<TraceContext> {
        let bad = || {
            IpcError::new(
                ErrorCode::InvalidArgument,
                format!("traceparent must be 00-<32 hex>-<16 hex>-<2 hex>, got {:?}", traceparent),
            )
        };
        let parts: Vec<&str> = traceparent.split('-').collect();
        if parts.iter().map(|p| p.len()).collect::<Vec<_>>() != [2, 32, 16, 2] {
            return Err(bad());
        }
        let hex: String = parts.concat();
        let mut out = [0u8; TRACE_BYTES];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(TraceContext(out))
    }

    /// The `traceparent` header, if the context is one a receiver takes (version 0, ids not
    /// all zeros); else the call is served as without one.
    pub fn traceparent(&self) -> Option<String> {
        let t = &self.0;
        if t[0] != 0 || t[1..17].iter().all(|&b| b == 0) || t[17..25].iter().all(|&b| b == 0) {
            return None;
        }
        let hex = |s: &[u8]| s.iter().map(|b| format!("{:02x}", b)).collect::<String>();
        Some(format!("00-{}-{}-{:02x}", hex(&t[1..17]), hex(&t[17..25]), t[25]))
    }
}

/// Adds the trace flag and the context to an encoded request (after any deadline).
pub fn with_trace(m: &mut Message, trace: &TraceContext) {
    m.data[3] |= FLAG_TRACE;
    m.data.extend_from_slice(&trace.0);
}

/// A received message's control flags: a cancel (its transaction id), or the message to decode
/// with any deadline and trace context taken off.
#[derive(Debug)]
pub enum Control {
    Cancel(u32),
    Request { message: Message, timeout_ms: Option<u32>, traceparent: Option<String> },
}

/// Takes the control flags off what a client sent. Only a cancel's header is checked here; a
/// request's header is checked by the decoder. `is_call` tells whether a type id is a call this
/// side receives (`None` when it is no message of the protocol at all).
pub fn read_control(mut m: Message, is_call: Option<bool>) -> Result<Control> {
    let data = &m.data;
    let flags = if data.len() >= HEADER_BYTES { data[3] } else { 0 };
    if flags == FLAG_CANCEL {
        if data[0..2] != MAGIC || data[2] != VERSION {
            return Err(invalid("a cancel with a bad magic or version"));
        }
        if data.len() != HEADER_BYTES {
            return Err(invalid(format!(
                "a cancel carries no payload, got {} bytes",
                data.len() - HEADER_BYTES
            )));
        }
        if !m.handles.is_empty() {
            return Err(invalid(format!("a cancel carries no handles, got {}", m.handles.len())));
        }
        let txid = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        if txid == 0 {
            return Err(invalid("a cancel without a transaction id"));
        }
        if is_call != Some(true) {
            return Err(invalid(format!(
                "a cancel for type id {}, which is not a call this side receives",
                m.type_id
            )));
        }
        return Ok(Control::Cancel(txid));
    }
    if flags & (FLAG_DEADLINE | FLAG_TRACE) == 0 {
        return Ok(Control::Request { message: m, timeout_ms: None, traceparent: None });
    }
    // The trace context comes last, after the deadline: taken off the end in that order.
    let mut end = data.len();
    let mut traceparent = None;
    if flags & FLAG_TRACE != 0 {
        if end < HEADER_BYTES + TRACE_BYTES {
            return Err(invalid(format!(
                "a trace context needs {} bytes after the header, got {}",
                TRACE_BYTES, end
            )));
        }
        end -= TRACE_BYTES;
        let mut t = [0u8; TRACE_BYTES];
        t.copy_from_slice(&data[end..end + TRACE_BYTES]);
        traceparent = TraceContext(t).traceparent();
    }
    let mut timeout_ms = None;
    if flags & FLAG_DEADLINE != 0 {
        if end < HEADER_BYTES + DEADLINE_BYTES {
            return Err(invalid(format!(
                "a deadline needs {} bytes after the header, got {}",
                DEADLINE_BYTES, end
            )));
        }
        end -= DEADLINE_BYTES;
        timeout_ms = Some(u32::from_le_bytes([data[end], data[end + 1], data[end + 2], data[end + 3]]));
        if is_call == Some(false) {
            return Err(invalid(format!("a deadline on type id {}, which is a push", m.type_id)));
        }
    }
    m.data.truncate(end);
    m.data[3] = flags & !(FLAG_DEADLINE | FLAG_TRACE);
    Ok(Control::Request { message: m, timeout_ms, traceparent })
}
