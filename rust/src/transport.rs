//! The socket transport of docs/socket-transport.md (protocol version 2) over Unix sockets and
//! TCP, blocking, on std threads: each connection has a reader thread (frames in, checked before
//! use) and a writer thread (batched output, CREDIT frames, PING). All connections share one
//! process lock, so a bridge (an end received on one connection and sent on another) moves
//! messages and credits between them in one step, holding nothing of its own.

use crate::error::{ErrorCode, IpcError, Result};
use crate::sha256::{equal_constant_time, hmac_sha256};
use crate::wire::{Handle, Message};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::FromRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const FRAME_HELLO: u8 = 1;
const FRAME_AUTH: u8 = 2;
const FRAME_MSG: u8 = 3;
const FRAME_CREDIT: u8 = 4;
const FRAME_CLOSE: u8 = 5;
const FRAME_PING: u8 = 6;
const FRAME_ERROR: u8 = 7;
const HEADER: usize = 16;
const HELLO_BYTES: usize = 60;
const AUTH_BYTES: usize = 32;
const DESCRIPTOR: usize = 64;
const MAX_ERROR_BYTES: usize = 1024;
const MAGIC: u32 = 0x316c_7466;
const VERSION: u16 = 2;
const AUTH_LABEL: &[u8] = b"ftl-ipc socket auth v1";
const KIND_CHANNEL: u16 = 0;
const KIND_PIPE_PRODUCER: u16 = 1;
const KIND_PIPE_CONSUMER: u16 = 2;
/// The bookkeeping a queued message costs besides its data, in every budget.
const MESSAGE_COST: u64 = 64;
const BOOTSTRAP_TYPE: u32 = 0x4654_4c00;
const READ_BUFFER: usize = 128 * 1024;
const DETACHED: u64 = u64::MAX;

/// The limits of one receive queue, as `Channel.pair` options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub capacity: u32,
    pub capacity_bytes: u32,
    pub max_message_bytes: u32,
    pub max_handles: u16,
}

impl Default for Limits {
    /// A socket root channel's defaults: 1,024 messages, 1 MiB, 64 KiB messages, 64 handles.
    fn default() -> Limits {
        Limits { capacity: 1024, capacity_bytes: 1 << 20, max_message_bytes: 64 * 1024, max_handles: 64 }
    }
}

impl Limits {
    /// FTL's 32 messages of a `Channel.pair()`, with the other limits of the default.
    pub fn pair() -> Limits {
        Limits { capacity: 32, ..Limits::default() }
    }

    fn check(&self, ceiling: &Limits) -> std::result::Result<(), String> {
        if !(1..=ceiling.capacity).contains(&self.capacity) {
            return Err(format!("capacity {} is outside 1..{}", self.capacity, ceiling.capacity));
        }
        if !(1..=ceiling.capacity_bytes).contains(&self.capacity_bytes) {
            return Err(format!("capacityBytes {} is outside 1..{}", self.capacity_bytes, ceiling.capacity_bytes));
        }
        let top = self.capacity_bytes.min(ceiling.max_message_bytes);
        if !(1..=top).contains(&self.max_message_bytes) {
            return Err(format!("maxMessageBytes {} is outside 1..{}", self.max_message_bytes, top));
        }
        if self.max_handles > ceiling.max_handles {
            return Err(format!("maxHandles {} exceeds {}", self.max_handles, ceiling.max_handles));
        }
        Ok(())
    }

    fn cost(&self) -> u64 {
        self.capacity_bytes as u64 + MESSAGE_COST * self.capacity as u64
    }
}

/// Options of `connect`, `Listener::bind` and `parent_channels`, with the TypeScript defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// This side's root receive queue.
    pub limits: Limits,
    pub secret: Option<Vec<u8>>,
    /// Send a PING after this long without sending anything; 0 sends none.
    pub heartbeat_ms: u32,
    /// Close the connection when nothing arrived for this long (default 3 × the peer's
    /// announced interval, clamped to 100 ms..1 h first; none when the peer announced 0).
    pub heartbeat_timeout_ms: Option<u32>,
    pub handshake_timeout_ms: u32,
    /// The largest limits the peer may announce for a channel it opens here.
    pub max_limits: Limits,
    pub max_channels: usize,
    /// Most the channels and pipes the peer opens may make this side hold, in all.
    pub max_peer_bytes: u64,
    /// Output held in user space; beyond it, sends meet BACKPRESSURE until the socket drains.
    pub max_output_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            secret: None,
            heartbeat_ms: 5000,
            heartbeat_timeout_ms: None,
            handshake_timeout_ms: 10_000,
            max_limits: Limits { capacity: 1 << 20, capacity_bytes: 64 << 20, max_message_bytes: 16 << 20, max_handles: 1024 },
            max_channels: 4096,
            max_peer_bytes: 1 << 30,
            max_output_bytes: 1 << 20,
        }
    }
}

/// A Unix socket path or a TCP `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Tcp(a) => f.write_str(a),
        }
    }
}

/// A channel end's counters, as `ChannelStats` of docs/channel.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub dropped: u64,
    pub backpressured: u64,
    pub discarded: u64,
    pub high_water_mark: u64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        };
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Channel,
    /// A pipe end that arrived: this side only holds it, to close it.
    Pipe,
}

/// One id of a connection.
struct Chan {
    kind: Kind,
    /// Our receive queue's limits (what the peer may send).
    limits: Limits,
    /// The peer's queue limits (what we may send in one message).
    peer_limits: Limits,
    queue: VecDeque<Message>,
    /// What we may still send.
    credits: (u64, u64),
    /// What the peer may still send.
    granted: (u64, u64),
    /// Taken by the user (or passed on by a bridge and returned), not yet returned.
    owed: (u64, u64),
    dirty: bool,
    /// An `open_channel` end whose other end was not sent yet: the peer does not know the id.
    unsent: bool,
    sent_close: bool,
    got_close: bool,
    accepted: u32,
    sent_count: u32,
    stats: Stats,
    /// The other id of a bridge: an end received on one connection and sent on another.
    bridge: Option<(u64, u32)>,
    /// The peer opened this id: its cost counts against `max_peer_bytes`.
    peer_cost: u64,
    origin: u32,
}

impl Chan {
    fn new(kind: Kind, limits: Limits, peer_limits: Limits) -> Chan {
        Chan {
            kind,
            limits,
            peer_limits,
            queue: VecDeque::new(),
            credits: (0, 0),
            granted: (0, 0),
            owed: (0, 0),
            dirty: false,
            unsent: false,
            sent_close: false,
            got_close: false,
            accepted: 0,
            sent_count: 0,
            stats: Stats::default(),
            bridge: None,
            peer_cost: 0,
            origin: 0,
        }
    }
}

struct Conn {
    stream: Stream,
    client: bool,
    next_id: u32,
    chans: HashMap<u32, Chan>,
    out: Vec<u8>,
    writing: bool,
    writer: Arc<Condvar>,
    dead: Option<(ErrorCode, String)>,
    options: Options,
    peer_bytes: u64,
    last_sent: Instant,
    /// An ERROR frame is queued: write what is there, then close.
    failing: bool,
    threads: u8,
}

#[derive(Default)]
struct World {
    conns: HashMap<u64, Conn>,
    next_conn: u64,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);
/// Notified on every change a user may wait for (a message, credits, a close, output drained).
static CHANGED: Condvar = Condvar::new();

/// The process lock. A channel or pipe end dropped while this thread holds it (one inside a
/// message the lock's holder drops) is closed when the holder lets go, not re-entrantly.
struct Locked(Option<MutexGuard<'static, Option<World>>>);

thread_local! {
    static HELD: std::cell::Cell<bool> = std::cell::Cell::new(false);
    static DEFERRED: std::cell::RefCell<Vec<(u64, u32, bool)>> = std::cell::RefCell::new(Vec::new());
}

impl Deref for Locked {
    type Target = World;
    fn deref(&self) -> &World {
        self.0.as_ref().and_then(|g| g.as_ref()).expect("initialised by lock()")
    }
}

impl DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut World {
        self.0.as_mut().and_then(|g| g.as_mut()).expect("initialised by lock()")
    }
}

impl Locked {
    fn close_deferred(&mut self) {
        loop {
            let pending = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
            if pending.is_empty() {
                return;
            }
            for (conn, id, theirs) in pending {
                close_end(self, conn, id, theirs);
            }
        }
    }

    /// Lets go of the guard (for a condition variable), closing deferred ends first.
    fn release(mut self) -> MutexGuard<'static, Option<World>> {
        self.close_deferred();
        HELD.with(|h| h.set(false));
        self.0.take().expect("held")
    }

    fn regain(g: MutexGuard<'static, Option<World>>) -> Locked {
        HELD.with(|h| h.set(true));
        Locked(Some(g))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.close_deferred();
            HELD.with(|h| h.set(false));
        }
    }
}

fn lock() -> Locked {
    let mut g = WORLD.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(World::default());
    }
    Locked::regain(g)
}

/// Closes an id now, or when this thread's hold on the lock ends.
fn close_from_drop(conn: u64, id: u32, theirs: bool) {
    if HELD.with(|h| h.get()) {
        DEFERRED.with(|d| d.borrow_mut().push((conn, id, theirs)));
    } else {
        let mut w = lock();
        close_end(&mut w, conn, id, theirs);
    }
}

fn close_end(w: &mut World, conn: u64, id: u32, theirs: bool) {
    if !theirs {
        return close_id(w, conn, id);
    }
    // Never sent: the peer of `mine` is gone before it ever existed.
    if let Some(ch) = w.conns.get_mut(&conn).and_then(|c| c.chans.get_mut(&id)) {
        if ch.unsent {
            ch.got_close = true;
        }
    }
    CHANGED.notify_all();
}

/// Waits on CHANGED until `deadline` (forever for None); false once it passed.
fn wait(g: Locked, deadline: Option<Instant>) -> (Locked, bool) {
    match deadline {
        None => (Locked::regain(CHANGED.wait(g.release()).unwrap_or_else(|p| p.into_inner())), true),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return (g, false);
            }
            let (g, _) = CHANGED.wait_timeout(g.release(), d - now).unwrap_or_else(|p| p.into_inner());
            (Locked::regain(g), true)
        }
    }
}

fn err(code: ErrorCode, message: impl Into<String>) -> IpcError {
    IpcError::new(code, message)
}

fn frame(out: &mut Vec<u8>, ftype: u8, handles: u16, id: u32, arg: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(ftype);
    out.push(0);
    out.extend_from_slice(&handles.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&arg.to_le_bytes());
    out.extend_from_slice(payload);
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// A channel end: one id of a socket connection. Dropping it closes it.
pub struct Channel {
    conn: u64,
    id: u32,
    /// The other end of an `open_channel` pair, not sent yet (it only exists to be sent).
    theirs: bool,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conn == DETACHED {
            f.write_str("Channel(closed)")
        } else {
            write!(f, "Channel({}:{})", self.conn, self.id)
        }
    }
}

/// A data pipe end that arrived in a message. This side does not stream pipes (docs/rust.md):
/// it holds the end and closes it, and what the far side writes is discarded.
pub struct PipeEnd {
    conn: u64,
    id: u32,
}

impl fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conn == DETACHED {
            f.write_str("PipeEnd(closed)")
        } else {
            write!(f, "PipeEnd({}:{})", self.conn, self.id)
        }
    }
}

impl PipeEnd {
    pub fn closed() -> PipeEnd {
        PipeEnd { conn: DETACHED, id: 0 }
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        if self.conn != DETACHED {
            close_from_drop(self.conn, self.id, false);
        }
    }
}

fn closed_error(id: u32) -> IpcError {
    err(ErrorCode::Closed, format!("channel {} is closed", id))
}

fn peer_closed_error(id: u32) -> IpcError {
    err(ErrorCode::PeerClosed, format!("the peer of channel {} has closed", id))
}

impl Channel {
    /// An end that is closed already: a placeholder (tests, default values).
    pub fn closed() -> Channel {
        Channel { conn: DETACHED, id: 0, theirs: false }
    }

    /// Sends at once: `BACKPRESSURE` when the peer's queue has no room for it (its credits ran
    /// out) or the connection's output is full, `PEER_CLOSED` once the peer closed. A message
    /// that fails is dropped, its handles closed; `writable` tells beforehand.
    pub fn send(&self, m: Message) -> Result<()> {
        let mut w = lock();
        send_locked(&mut w, self.conn, self.id, m).map_err(|(e, _)| e)
    }

    /// Sends, waiting up to `timeout` (forever for None) while the peer's queue is full.
    pub fn send_wait(&self, m: Message, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut w = lock();
        let mut m = m;
        loop {
            match send_locked(&mut w, self.conn, self.id, m) {
                Ok(()) => return Ok(()),
                Err((e, back)) if e.code == ErrorCode::Backpressure => {
                    m = back;
                    let (g, more) = wait(w, deadline);
                    w = g;
                    if !more {
                        return Err(err(
                            ErrorCode::Timeout,
                            format!("channel {}: no room within {:?}", self.id, timeout.unwrap_or_default()),
                        ));
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Whether a message of `bytes` bytes would be sent now.
    pub fn writable(&self, bytes: usize) -> bool {
        let w = lock();
        match w.conns.get(&self.conn).and_then(|c| c.chans.get(&self.id).map(|ch| (c, ch))) {
            Some((c, ch)) => {
                c.dead.is_none()
                    && !ch.sent_close
                    && !ch.got_close
                    && ch.credits.0 >= 1
                    && ch.credits.1 >= bytes as u64
                    && c.out.len() <= c.options.max_output_bytes
            }
            None => false,
        }
    }

    /// The next message, waiting up to `timeout` (forever for None): `TIMEOUT` when none came,
    /// `PEER_CLOSED` once the peer closed and everything it sent was taken.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Message> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut w = lock();
        loop {
            if let Some(m) = take(&mut w, self.conn, self.id)? {
                return Ok(m);
            }
            let (g, more) = wait(w, deadline);
            w = g;
            if !more {
                return Err(err(ErrorCode::Timeout, format!("channel {}: nothing arrived within {:?}", self.id, timeout.unwrap_or_default())));
            }
        }
    }

    /// A message if one is queued.
    pub fn try_recv(&self) -> Result<Option<Message>> {
        let mut w = lock();
        take(&mut w, self.conn, self.id)
    }

    /// Where this end lives, to read its statistics without holding it (the runtime host).
    pub(crate) fn key(&self) -> (u64, u32) {
        (self.conn, self.id)
    }

    /// This end's receive queue limits (what the peer may send it).
    pub fn limits(&self) -> Limits {
        let w = lock();
        w.conns.get(&self.conn).and_then(|c| c.chans.get(&self.id)).map(|ch| ch.limits).unwrap_or_else(Limits::pair)
    }

    pub fn stats(&self) -> Stats {
        let w = lock();
        w.conns.get(&self.conn).and_then(|c| c.chans.get(&self.id)).map(|ch| ch.stats).unwrap_or_default()
    }

    /// Closes this end: the peer sees PEER_CLOSED after what was sent before.
    pub fn close(&self) {
        if self.conn == DETACHED {
            return;
        }
        let mut w = lock();
        close_end(&mut w, self.conn, self.id, self.theirs);
    }

    /// A new channel on this channel's connection, as `Channel.pair` with `limits`: keep the
    /// first end, send the second in a message on any channel of this connection. Until it is
    /// sent the first end has no credits.
    pub fn open_channel(&self, limits: Limits) -> Result<(Channel, Channel)> {
        limits.check(&Limits { capacity: u32::MAX, capacity_bytes: u32::MAX, max_message_bytes: u32::MAX, max_handles: u16::MAX })
            .map_err(|p| err(ErrorCode::InvalidArgument, p))?;
        let mut w = lock();
        let c = w.conns.get_mut(&self.conn).filter(|c| c.dead.is_none()).ok_or_else(|| closed_error(self.id))?;
        let id = c.next_id;
        c.next_id += 2;
        let mut ch = Chan::new(Kind::Channel, limits, limits);
        ch.unsent = true;
        c.chans.insert(id, ch);
        Ok((Channel { conn: self.conn, id, theirs: false }, Channel { conn: self.conn, id, theirs: true }))
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.conn == DETACHED {
            return;
        }
        close_from_drop(self.conn, self.id, self.theirs);
    }
}

/// The statistics of an end by its `key`, while it is open.
pub(crate) fn stats_of(key: (u64, u32)) -> Option<Stats> {
    let w = lock();
    w.conns.get(&key.0).and_then(|c| c.chans.get(&key.1)).filter(|ch| !ch.sent_close).map(|ch| ch.stats)
}

/// Takes the next queued message of an id, owing its credits back; None when there is none yet.
fn take(w: &mut World, conn: u64, id: u32) -> Result<Option<Message>> {
    let c = match w.conns.get_mut(&conn) {
        Some(c) => c,
        None => return Err(closed_error(id)),
    };
    let writer = c.writer.clone();
    let ch = match c.chans.get_mut(&id) {
        Some(ch) if !ch.sent_close => ch,
        _ => return Err(closed_error(id)),
    };
    if let Some(m) = ch.queue.pop_front() {
        let n = m.data.len() as u64;
        ch.owed.0 += 1;
        ch.owed.1 += n;
        ch.stats.received += 1;
        ch.stats.received_bytes += n;
        ch.dirty = true;
        writer.notify_one();
        return Ok(Some(m));
    }
    if ch.got_close || c.dead.is_some() {
        return Err(peer_closed_error(id));
    }
    Ok(None)
}

/// Sends CLOSE for an id (once), dropping what is queued; frees the id when both sides closed.
fn close_id(w: &mut World, conn: u64, id: u32) {
    {
        let c = match w.conns.get_mut(&conn) {
            Some(c) => c,
            None => return,
        };
        let ch = match c.chans.get_mut(&id) {
            Some(ch) => ch,
            None => return,
        };
        if ch.sent_close {
            return;
        }
        ch.sent_close = true;
        ch.queue.clear();
        let unsent = ch.unsent;
        let accepted = ch.accepted;
        ch.bridge = None;
        if c.dead.is_none() && !unsent {
            frame(&mut c.out, FRAME_CLOSE, 0, id, accepted, &[]);
            c.writer.notify_one();
        }
        let ch = &c.chans[&id];
        if ch.got_close || c.dead.is_some() || unsent {
            free(c, id);
        }
        if c.dead.is_some() && c.chans.is_empty() && c.threads == 0 {
            w.conns.remove(&conn);
        }
    }
    CHANGED.notify_all();
}

fn free(c: &mut Conn, id: u32) {
    if let Some(ch) = c.chans.remove(&id) {
        c.peer_bytes -= ch.peer_cost;
    }
    c.writer.notify_one();
}

/// Checks that a handle can move on `conn` and takes it out of the caller's hands.
fn movable(w: &World, conn: u64, id: u32, h: &Handle) -> std::result::Result<(), String> {
    let ch = match h {
        Handle::Channel(ch) => ch,
        _ => return Err("a data pipe end cannot be sent on from the Rust side".into()),
    };
    if ch.conn == DETACHED {
        return Err("a closed channel end cannot be sent".into());
    }
    if ch.conn == conn && ch.id == id && !ch.theirs {
        return Err("a channel cannot be sent over itself".into());
    }
    if ch.theirs && ch.conn != conn {
        return Err(format!("the other end of an open_channel of connection {} can only be sent on it", ch.conn));
    }
    match w.conns.get(&ch.conn).and_then(|c| c.chans.get(&ch.id)) {
        Some(state) if !state.sent_close && (ch.theirs == state.unsent) => Ok(()),
        _ => Err(format!("channel {} is closed or was sent already", ch.id)),
    }
}

fn descriptor(id: u32, lim: &Limits, kind: u16, credits: (u64, u64), origin: u32, stats: &Stats) -> [u8; DESCRIPTOR] {
    let mut d = [0u8; DESCRIPTOR];
    d[0..4].copy_from_slice(&id.to_le_bytes());
    d[4..8].copy_from_slice(&lim.capacity.to_le_bytes());
    d[8..12].copy_from_slice(&lim.capacity_bytes.to_le_bytes());
    d[12..16].copy_from_slice(&lim.max_message_bytes.to_le_bytes());
    d[16..18].copy_from_slice(&lim.max_handles.to_le_bytes());
    d[18..20].copy_from_slice(&kind.to_le_bytes());
    d[20..24].copy_from_slice(&(credits.0 as u32).to_le_bytes());
    d[24..28].copy_from_slice(&(credits.1 as u32).to_le_bytes());
    d[28..32].copy_from_slice(&origin.to_le_bytes());
    let counters = [stats.sent, stats.received, stats.dropped, stats.backpressured, stats.discarded, stats.high_water_mark, stats.sent_bytes, stats.received_bytes];
    for (i, v) in counters.iter().enumerate() {
        d[32 + 4 * i..36 + 4 * i].copy_from_slice(&(*v as u32).to_le_bytes());
    }
    d
}

/// Turns a handle into its descriptor on `conn`: the other end of an `open_channel` pair opens
/// its own id; any other end becomes a bridge to a new id.
fn export(w: &mut World, conn: u64, h: Handle) -> [u8; DESCRIPTOR] {
    let ch = match h {
        Handle::Channel(ch) => ch,
        _ => unreachable!("checked by movable"),
    };
    let (hc, hid, theirs) = (ch.conn, ch.id, ch.theirs);
    std::mem::forget(ch);
    if theirs {
        let c = w.conns.get_mut(&conn).expect("checked");
        let state = c.chans.get_mut(&hid).expect("checked");
        state.unsent = false;
        state.credits = (state.peer_limits.capacity as u64, state.peer_limits.capacity_bytes as u64);
        state.granted = (state.limits.capacity as u64, state.limits.capacity_bytes as u64);
        return descriptor(hid, &state.limits, KIND_CHANNEL, state.granted, 0, &Stats::default());
    }
    // A bridge: the new peer gets the moved end's limits and, as credits, the room left in the
    // old peer's queue (the end's own credits); what was queued follows on the new id.
    let (limits, credits, origin, stats, queued) = {
        let old = w.conns.get_mut(&hc).and_then(|c| c.chans.get_mut(&hid)).expect("checked");
        (old.limits, old.credits, old.origin, old.stats, old.queue.len())
    };
    let c = w.conns.get_mut(&conn).expect("checked");
    let nid = c.next_id;
    c.next_id += 2;
    let mut state = Chan::new(Kind::Channel, limits, limits);
    state.credits = (limits.capacity as u64, limits.capacity_bytes as u64);
    state.granted = credits;
    state.bridge = Some((hc, hid));
    state.stats = stats;
    c.chans.insert(nid, state);
    w.conns.get_mut(&hc).and_then(|c| c.chans.get_mut(&hid)).expect("checked").bridge = Some((conn, nid));
    let d = descriptor(nid, &limits, KIND_CHANNEL, credits, origin, &stats);
    if queued > 0 {
        // Sent after the descriptor's message: deferred to the caller's pump.
        PENDING_PUMPS.with(|p| p.borrow_mut().push((hc, hid)));
    }
    d
}

thread_local! {
    /// Bridged ids whose queued messages wait to follow the message that carried the end.
    static PENDING_PUMPS: std::cell::RefCell<Vec<(u64, u32)>> = std::cell::RefCell::new(Vec::new());
}

/// Sends on an id; on failure gives the message back with the error.
fn send_locked(w: &mut World, conn: u64, id: u32, m: Message) -> std::result::Result<(), (IpcError, Message)> {
    let c = match w.conns.get_mut(&conn) {
        Some(c) => c,
        None => return Err((closed_error(id), m)),
    };
    let dead = c.dead.is_some();
    let out_full = c.out.len() > c.options.max_output_bytes;
    let ch = match c.chans.get_mut(&id) {
        Some(ch) if !ch.sent_close => ch,
        _ => return Err((closed_error(id), m)),
    };
    if ch.got_close || dead {
        return Err((peer_closed_error(id), m));
    }
    let n = m.data.len() as u64;
    if n > ch.peer_limits.max_message_bytes as u64 {
        return Err((err(ErrorCode::TooLarge, format!("a message of {} bytes exceeds maxMessageBytes {} of channel {}", n, ch.peer_limits.max_message_bytes, id)), m));
    }
    if m.handles.len() > ch.peer_limits.max_handles as usize {
        return Err((err(ErrorCode::TooManyHandles, format!("{} handles exceed maxHandles {} of channel {}", m.handles.len(), ch.peer_limits.max_handles, id)), m));
    }
    if ch.unsent || ch.credits.0 < 1 || ch.credits.1 < n || out_full {
        ch.stats.backpressured += 1;
        let why = if ch.unsent {
            "its other end was not sent yet".to_string()
        } else if out_full {
            "the connection's output is full".to_string()
        } else {
            format!("the peer's queue is full ({} messages, {} bytes of credit left)", ch.credits.0, ch.credits.1)
        };
        return Err((err(ErrorCode::Backpressure, format!("channel {}: {}", id, why)), m));
    }
    for h in &m.handles {
        if let Err(why) = movable(w, conn, id, h) {
            return Err((err(ErrorCode::HandleNotMovable, why), m));
        }
    }
    let Message { type_id, data, handles } = m;
    let count = handles.len();
    let mut descriptors = Vec::with_capacity(count * DESCRIPTOR);
    for h in handles {
        descriptors.extend_from_slice(&export(w, conn, h));
    }
    let c = w.conns.get_mut(&conn).expect("looked up above");
    let ch = c.chans.get_mut(&id).expect("looked up above");
    ch.credits.0 -= 1;
    ch.credits.1 -= n;
    ch.sent_count = ch.sent_count.wrapping_add(1);
    ch.stats.sent += 1;
    ch.stats.sent_bytes += n;
    let len = data.len() + descriptors.len();
    c.out.reserve(HEADER + len);
    frame(&mut c.out, FRAME_MSG, count as u16, id, type_id, &[]);
    let at = c.out.len() - HEADER;
    c.out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
    c.out.extend_from_slice(&data);
    c.out.extend_from_slice(&descriptors);
    c.writer.notify_one();
    let pumps = PENDING_PUMPS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (pc, pid) in pumps {
        pump(w, pc, pid);
    }
    Ok(())
}

/// Passes on what a bridged id holds, as far as the other side's credits allow, and its close.
fn pump(w: &mut World, conn: u64, id: u32) {
    loop {
        let (other, m) = {
            let ch = match w.conns.get_mut(&conn).and_then(|c| c.chans.get_mut(&id)) {
                Some(ch) => ch,
                None => return,
            };
            let other = match ch.bridge {
                Some(o) => o,
                None => return,
            };
            match ch.queue.pop_front() {
                Some(m) => (other, m),
                None => break,
            }
        };
        match send_locked(w, other.0, other.1, m) {
            Ok(()) => {}
            Err((e, m)) if e.code == ErrorCode::Backpressure => {
                if let Some(ch) = w.conns.get_mut(&conn).and_then(|c| c.chans.get_mut(&id)) {
                    ch.queue.push_front(m);
                }
                return;
            }
            // The far side is gone: its close comes through close_id.
            Err(_) => {}
        }
    }
    let closed = w.conns.get(&conn).and_then(|c| c.chans.get(&id)).map(|ch| ch.got_close).unwrap_or(false);
    if closed {
        if let Some((oc, oid)) = w.conns.get_mut(&conn).and_then(|c| c.chans.get_mut(&id)).and_then(|ch| ch.bridge.take()) {
            if let Some(o) = w.conns.get_mut(&oc).and_then(|c| c.chans.get_mut(&oid)) {
                o.bridge = None;
            }
            close_id(w, oc, oid);
        }
        close_id(w, conn, id);
    }
}

/// Closes a connection because of `error`: every channel on it sees PEER_CLOSED after what
/// had arrived, and the far half of each bridge closes.
fn fail(w: &mut World, conn: u64, code: ErrorCode, message: String, tell_peer: bool) {
    let bridged: Vec<u32> = {
        let c = match w.conns.get_mut(&conn) {
            Some(c) => c,
            None => return,
        };
        if c.dead.is_some() {
            return;
        }
        if tell_peer {
            let kind = match code {
                ErrorCode::AuthFailed => 1,
                ErrorCode::Timeout => 2,
                _ => 0,
            };
            let text = message.as_bytes();
            frame(&mut c.out, FRAME_ERROR, 0, 0, kind, &text[..text.len().min(MAX_ERROR_BYTES)]);
            c.failing = true;
        } else {
            c.stream.shutdown(Shutdown::Both);
        }
        c.dead = Some((code, message));
        c.writer.notify_one();
        let ids: Vec<u32> = c.chans.keys().copied().collect();
        let mut bridged = Vec::new();
        for id in ids {
            let ch = c.chans.get_mut(&id).expect("listed");
            ch.got_close = true;
            if ch.bridge.is_some() {
                bridged.push(id);
            } else if ch.sent_close {
                free(c, id);
            }
        }
        bridged
    };
    // A bridge passes on what had arrived, then closes its other half.
    for id in bridged {
        pump(w, conn, id);
    }
    CHANGED.notify_all();
}

/// What a connection's frames may be, given its state; Err is a protocol violation.
fn check_header(c: &Conn, ftype: u8, handles: u16, id: u32, length: usize) -> std::result::Result<(), String> {
    match ftype {
        FRAME_PING => return if length == 0 { Ok(()) } else { Err(format!("PING of {} bytes", length)) },
        FRAME_ERROR => return if length <= MAX_ERROR_BYTES { Ok(()) } else { Err(format!("ERROR frame of {} bytes", length)) },
        FRAME_MSG | FRAME_CREDIT | FRAME_CLOSE => {}
        FRAME_HELLO | FRAME_AUTH => return Err(format!("frame type {} after the handshake", ftype)),
        _ => return Err(format!("unknown frame type {}", ftype)),
    }
    let ch = c.chans.get(&id).ok_or_else(|| format!("unknown channel id {}", id))?;
    if ch.got_close {
        return Err(format!("frame type {} on channel {} after its CLOSE", ftype, id));
    }
    if ch.unsent {
        return Err(format!("frame type {} on channel {}, which the peer does not know yet", ftype, id));
    }
    match ftype {
        FRAME_CREDIT => if length == 4 { Ok(()) } else { Err(format!("CREDIT of {} bytes", length)) },
        FRAME_CLOSE => if length == 0 { Ok(()) } else { Err(format!("CLOSE of {} bytes", length)) },
        _ => {
            let descriptors = handles as usize * DESCRIPTOR;
            if length < descriptors {
                return Err(format!("MSG of {} bytes cannot hold {} handle descriptors", length, handles));
            }
            let data = (length - descriptors) as u64;
            if ch.kind == Kind::Pipe {
                if handles != 0 {
                    return Err(format!("MSG with handles on pipe id {}", id));
                }
                return if data <= ch.granted.1 { Ok(()) } else { Err(format!("{} bytes on pipe id {} beyond the {} credited", data, id, ch.granted.1)) };
            }
            if handles > ch.limits.max_handles {
                return Err(format!("MSG with {} handles on channel {}, whose maxHandles is {}", handles, id, ch.limits.max_handles));
            }
            if data > ch.limits.max_message_bytes as u64 {
                return Err(format!("MSG of {} bytes on channel {}, whose maxMessageBytes is {}", data, id, ch.limits.max_message_bytes));
            }
            if ch.granted.0 < 1 || ch.granted.1 < data {
                return Err(format!("MSG of {} bytes on channel {} beyond the credits granted ({} messages, {} bytes)", data, id, ch.granted.0, ch.granted.1));
            }
            Ok(())
        }
    }
}

/// Opens the id a received descriptor names; Err is a protocol violation.
fn import(w: &mut World, conn: u64, d: &[u8]) -> std::result::Result<Handle, String> {
    let c = w.conns.get_mut(&conn).expect("reading it");
    let id = le32(d, 0);
    let lim = Limits { capacity: le32(d, 4), capacity_bytes: le32(d, 8), max_message_bytes: le32(d, 12), max_handles: le16(d, 16) };
    let kind = le16(d, 18);
    let credits = (le32(d, 20) as u64, le32(d, 24) as u64);
    let cost = lim.cost();
    let o = &c.options;
    let peer_parity = if c.client { 0 } else { 1 };
    if id % 2 != peer_parity || c.chans.contains_key(&id) {
        return Err(format!("handle descriptor names channel id {}, which the peer may not open", id));
    }
    if c.chans.len() >= o.max_channels {
        return Err(format!("the peer opened more than {} channels", o.max_channels));
    }
    if c.peer_bytes + cost > o.max_peer_bytes {
        return Err(format!(
            "channel {} may hold {} bytes; with the {} bytes of the peer's open channels, that exceeds the {} bytes allowed",
            id, cost, c.peer_bytes, o.max_peer_bytes
        ));
    }
    let mut ch = match kind {
        KIND_CHANNEL => {
            lim.check(&o.max_limits)?;
            if credits.0 > lim.capacity as u64 || credits.1 > lim.capacity_bytes as u64 {
                return Err(format!("handle descriptor for channel {} grants more credits than its capacity", id));
            }
            let mut ch = Chan::new(Kind::Channel, lim, lim);
            ch.credits = credits;
            ch.granted = (lim.capacity as u64, lim.capacity_bytes as u64);
            ch.origin = le32(d, 28);
            let v: Vec<u64> = (0..8).map(|i| le32(d, 32 + 4 * i) as u64).collect();
            ch.stats = Stats { sent: v[0], received: v[1], dropped: v[2], backpressured: v[3], discarded: v[4], high_water_mark: v[5], sent_bytes: v[6], received_bytes: v[7] };
            ch
        }
        KIND_PIPE_PRODUCER | KIND_PIPE_CONSUMER => {
            if !(1..=o.max_limits.capacity_bytes.min(1 << 30)).contains(&lim.capacity_bytes) {
                return Err(format!("pipe descriptor for channel {}: capacityBytes {} is out of range", id, lim.capacity_bytes));
            }
            if lim.capacity != 0 || lim.max_message_bytes != lim.capacity_bytes || lim.max_handles != 0 || credits.0 != 0 {
                return Err(format!("pipe descriptor for channel {}: capacity, maxMessageBytes, maxHandles or message credits out of place", id));
            }
            let most = if kind == KIND_PIPE_PRODUCER { lim.capacity_bytes as u64 } else { 0 };
            if credits.1 > most {
                return Err(format!("pipe descriptor for channel {} grants {} bytes of credit", id, credits.1));
            }
            let mut ch = Chan::new(Kind::Pipe, lim, lim);
            // A consumer sent here: the far side streams up to capacityBytes, which we discard.
            ch.granted = (0, if kind == KIND_PIPE_CONSUMER { lim.capacity_bytes as u64 } else { 0 });
            ch
        }
        other => return Err(format!("handle descriptor for channel {} has unknown kind {}", id, other)),
    };
    ch.peer_cost = cost;
    c.peer_bytes += cost;
    c.chans.insert(id, ch);
    Ok(match kind {
        KIND_CHANNEL => Handle::Channel(Channel { conn, id, theirs: false }),
        KIND_PIPE_PRODUCER => Handle::Producer(PipeEnd { conn, id }),
        _ => Handle::Consumer(PipeEnd { conn, id }),
    })
}

/// Acts on one checked frame.
fn on_frame(w: &mut World, conn: u64, ftype: u8, handles: u16, id: u32, arg: u32, payload: Vec<u8>) -> std::result::Result<(), String> {
    match ftype {
        FRAME_PING => Ok(()),
        FRAME_ERROR => {
            let code = match arg {
                1 => ErrorCode::AuthFailed,
                2 => ErrorCode::Timeout,
                _ => ErrorCode::ProtocolError,
            };
            let text = String::from_utf8_lossy(&payload).into_owned();
            fail(w, conn, code, format!("the peer closed the connection: {}", text), false);
            Ok(())
        }
        FRAME_CREDIT => {
            let n = le32(&payload, 0) as u64;
            let c = w.conns.get_mut(&conn).expect("reading it");
            let ch = c.chans.get_mut(&id).expect("checked");
            if ch.sent_close || ch.kind == Kind::Pipe {
                return Ok(());
            }
            let (cap, cap_bytes) = (ch.peer_limits.capacity as u64, ch.peer_limits.capacity_bytes as u64);
            if ch.credits.0 + arg as u64 > cap || ch.credits.1 + n > cap_bytes {
                return Err(format!("CREDIT on channel {} raises the credits above the capacity", id));
            }
            ch.credits.0 += arg as u64;
            ch.credits.1 += n;
            let bridge = ch.bridge;
            CHANGED.notify_all();
            if let Some((bc, bid)) = bridge {
                // The new peer took what the bridge passed on: the old peer gets that room back.
                if let Some(o) = w.conns.get_mut(&bc).and_then(|c| {
                    let writer = c.writer.clone();
                    c.chans.get_mut(&bid).map(|o| (o, writer))
                }) {
                    o.0.owed.0 += arg as u64;
                    o.0.owed.1 += n;
                    o.0.dirty = true;
                    o.1.notify_one();
                }
                pump(w, bc, bid);
            }
            Ok(())
        }
        FRAME_CLOSE => {
            let c = w.conns.get_mut(&conn).expect("reading it");
            let ch = c.chans.get_mut(&id).expect("checked");
            if ch.kind == Kind::Channel {
                if arg > ch.sent_count {
                    return Err(format!("CLOSE on channel {} says {} messages were accepted of the {} sent", id, arg, ch.sent_count));
                }
                let dropped = (ch.sent_count - arg) as u64;
                ch.stats.sent -= dropped.min(ch.stats.sent);
                ch.stats.dropped += dropped;
            }
            ch.got_close = true;
            let bridged = ch.bridge.is_some();
            if ch.sent_close {
                free(c, id);
            }
            CHANGED.notify_all();
            if bridged {
                pump(w, conn, id);
            }
            Ok(())
        }
        _ => {
            let data_len = payload.len() - handles as usize * DESCRIPTOR;
            let mut moved = Vec::with_capacity(handles as usize);
            for i in 0..handles as usize {
                let at = data_len + i * DESCRIPTOR;
                match import(w, conn, &payload[at..at + DESCRIPTOR]) {
                    Ok(h) => moved.push(h),
                    Err(problem) => return Err(problem),
                }
            }
            let mut data = payload;
            data.truncate(data_len);
            let c = w.conns.get_mut(&conn).expect("reading it");
            let ch = c.chans.get_mut(&id).expect("checked");
            let n = data.len() as u64;
            if ch.kind == Kind::Pipe {
                ch.granted.1 -= n;
                return Ok(());
            }
            ch.granted.0 -= 1;
            ch.granted.1 -= n;
            ch.accepted = ch.accepted.wrapping_add(1);
            if ch.sent_close {
                return Ok(()); // dropped behind our CLOSE; `moved` closes with it
            }
            let m = Message { type_id: arg, data, handles: moved };
            let bridged = ch.bridge.is_some();
            ch.queue.push_back(m);
            let len = ch.queue.len() as u64;
            if len > ch.stats.high_water_mark {
                ch.stats.high_water_mark = len;
            }
            if bridged {
                pump(w, conn, id);
            } else {
                CHANGED.notify_all();
            }
            Ok(())
        }
    }
}

fn reader_thread(conn: u64, stream: Stream) {
    let mut r = BufReader::with_capacity(READ_BUFFER, stream);
    let result: std::result::Result<(), (ErrorCode, String, bool)> = (|| loop {
        let mut h = [0u8; HEADER];
        match read_full(&mut r, &mut h) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(e),
        }
        let length = le32(&h, 0) as usize;
        let (ftype, handles, id, arg) = (h[4], le16(&h, 6), le32(&h, 8), le32(&h, 12));
        {
            let w = lock();
            let c = match w.conns.get(&conn) {
                Some(c) if c.dead.is_none() => c,
                _ => return Ok(()),
            };
            // Checked before any buffer is allocated for the payload.
            check_header(c, ftype, handles, id, length).map_err(|p| (ErrorCode::ProtocolError, p, true))?;
        }
        let mut payload = vec![0u8; length];
        if length > 0 && !read_full(&mut r, &mut payload)? {
            return Err((ErrorCode::ProtocolError, "the stream ended in the middle of a frame".into(), false));
        }
        let mut w = lock();
        if w.conns.get(&conn).map(|c| c.dead.is_some()).unwrap_or(true) {
            return Ok(());
        }
        on_frame(&mut w, conn, ftype, handles, id, arg, payload).map_err(|p| (ErrorCode::ProtocolError, p, true))?;
    })();
    let mut w = lock();
    match result {
        Ok(()) => fail(&mut w, conn, ErrorCode::PeerClosed, "the peer ended the connection".into(), false),
        Err((code, message, tell)) => fail(&mut w, conn, code, message, tell),
    }
    thread_done(&mut w, conn);
}

/// Reads all of `buf`; false at a clean end of stream before its first byte.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::result::Result<bool, (ErrorCode, String, bool)> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err((ErrorCode::ProtocolError, "the stream ended in the middle of a frame".into(), false)),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
                return Err((ErrorCode::Timeout, "nothing arrived within the heartbeat timeout".into(), true))
            }
            Err(e) => return Err((ErrorCode::PeerClosed, format!("the connection failed: {}", e), false)),
        }
    }
    Ok(true)
}

fn thread_done(w: &mut World, conn: u64) {
    let gone = match w.conns.get_mut(&conn) {
        Some(c) => {
            c.threads -= 1;
            c.threads == 0 && c.chans.is_empty()
        }
        None => false,
    };
    if gone {
        w.conns.remove(&conn);
    }
    CHANGED.notify_all();
}

fn writer_thread(conn: u64, mut stream: Stream, heartbeat: Option<Duration>) {
    let mut batch = Vec::new();
    loop {
        let mut w = lock();
        let (failing, end) = loop {
            let c = match w.conns.get_mut(&conn) {
                Some(c) => c,
                None => return,
            };
            // Credits owed go out once per id per batch.
            let mut out = std::mem::take(&mut c.out);
            for (id, ch) in c.chans.iter_mut() {
                if ch.dirty {
                    ch.dirty = false;
                    if ch.owed != (0, 0) && !ch.sent_close {
                        frame(&mut out, FRAME_CREDIT, 0, *id, ch.owed.0 as u32, &(ch.owed.1 as u32).to_le_bytes());
                        ch.granted.0 += ch.owed.0;
                        ch.granted.1 += ch.owed.1;
                    }
                    ch.owed = (0, 0);
                }
            }
            c.out = out;
            let all_closed = c.chans.values().all(|ch| ch.sent_close);
            if !c.out.is_empty() {
                std::mem::swap(&mut batch, &mut c.out);
                c.writing = true;
                c.last_sent = Instant::now();
                break (c.failing, false);
            }
            if c.dead.is_some() || all_closed {
                break (c.failing, true);
            }
            let writer = c.writer.clone();
            let idle = heartbeat.map(|h| h.saturating_sub(c.last_sent.elapsed()));
            match idle {
                Some(d) if d.is_zero() => {
                    frame(&mut c.out, FRAME_PING, 0, 0, 0, &[]);
                }
                Some(d) => w = Locked::regain(writer.wait_timeout(w.release(), d).unwrap_or_else(|p| p.into_inner()).0),
                None => w = Locked::regain(writer.wait(w.release()).unwrap_or_else(|p| p.into_inner())),
            }
        };
        if end {
            if let Some(c) = w.conns.get(&conn) {
                // Every end is closed here: end our stream; the reader sees the peer's end.
                c.stream.shutdown(if c.dead.is_some() && !failing { Shutdown::Both } else { Shutdown::Write });
            }
            thread_done(&mut w, conn);
            return;
        }
        drop(w);
        let result = stream.write_all(&batch);
        batch.clear();
        let mut w = lock();
        if let Some(c) = w.conns.get_mut(&conn) {
            c.writing = false;
        }
        CHANGED.notify_all();
        if failing {
            if let Some(c) = w.conns.get(&conn) {
                c.stream.shutdown(Shutdown::Both);
            }
        }
        if let Err(e) = result {
            fail(&mut w, conn, ErrorCode::PeerClosed, format!("writing to the connection failed: {}", e), false);
        }
    }
}

fn random_bytes(out: &mut [u8]) -> Result<()> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(out))
        .map_err(|e| err(ErrorCode::ConnectionFailed, format!("cannot read /dev/urandom: {}", e)).with_cause(e))
}

fn hello(options: &Options, nonce: &[u8; 32]) -> Vec<u8> {
    let mut p = Vec::with_capacity(HELLO_BYTES);
    p.extend_from_slice(&MAGIC.to_le_bytes());
    p.extend_from_slice(&VERSION.to_le_bytes());
    p.extend_from_slice(&(options.secret.is_some() as u16).to_le_bytes());
    p.extend_from_slice(nonce);
    let l = &options.limits;
    p.extend_from_slice(&l.capacity.to_le_bytes());
    p.extend_from_slice(&l.capacity_bytes.to_le_bytes());
    p.extend_from_slice(&l.max_message_bytes.to_le_bytes());
    p.extend_from_slice(&l.max_handles.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&options.heartbeat_ms.to_le_bytes());
    let mut out = Vec::new();
    frame(&mut out, FRAME_HELLO, 0, 0, 0, &p);
    out
}

/// Reads one handshake frame of `want` type and exactly `size` bytes (an ERROR fails it).
fn handshake_frame(s: &mut Stream, want: u8, size: usize) -> Result<Vec<u8>> {
    let mut h = [0u8; HEADER];
    let failed = |e: io::Error| {
        let code = if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut { ErrorCode::Timeout } else { ErrorCode::ConnectionFailed };
        err(code, format!("the handshake failed: {}", e)).with_cause(e)
    };
    s.read_exact(&mut h).map_err(failed)?;
    let length = le32(&h, 0) as usize;
    if h[4] == FRAME_ERROR && length <= MAX_ERROR_BYTES {
        let mut text = vec![0u8; length];
        s.read_exact(&mut text).map_err(failed)?;
        let code = match le32(&h, 12) {
            1 => ErrorCode::AuthFailed,
            2 => ErrorCode::Timeout,
            _ => ErrorCode::ProtocolError,
        };
        return Err(err(code, format!("the peer refused the handshake: {}", String::from_utf8_lossy(&text))));
    }
    if h[4] != want || length != size {
        return Err(err(ErrorCode::ProtocolError, format!("expected frame type {} of {} bytes in the handshake, got type {} of {}", want, size, h[4], length)));
    }
    let mut p = vec![0u8; size];
    s.read_exact(&mut p).map_err(failed)?;
    Ok(p)
}

fn auth(secret: &[u8], role: u8, own: &[u8], peer: &[u8]) -> [u8; 32] {
    let mut m = AUTH_LABEL.to_vec();
    m.push(role);
    m.extend_from_slice(own);
    m.extend_from_slice(peer);
    hmac_sha256(secret, &m)
}

/// The handshake, then the connection's threads; gives the root channel.
fn start(mut stream: Stream, client: bool, options: Options) -> Result<Channel> {
    options.limits.check(&Limits { capacity: u32::MAX, capacity_bytes: u32::MAX, max_message_bytes: u32::MAX, max_handles: u16::MAX })
        .map_err(|p| err(ErrorCode::InvalidArgument, p))?;
    let mut nonce = [0u8; 32];
    random_bytes(&mut nonce)?;
    stream
        .set_read_timeout(Some(Duration::from_millis(options.handshake_timeout_ms.max(1) as u64)))
        .map_err(|e| err(ErrorCode::ConnectionFailed, e.to_string()))?;
    let io_failed = |e: io::Error| err(ErrorCode::ConnectionFailed, format!("the handshake failed: {}", e)).with_cause(e);
    stream.write_all(&hello(&options, &nonce)).map_err(io_failed)?;
    let p = handshake_frame(&mut stream, FRAME_HELLO, HELLO_BYTES)?;
    let refuse = |s: &mut Stream, code: ErrorCode, kind: u32, text: String| {
        let mut out = Vec::new();
        frame(&mut out, FRAME_ERROR, 0, 0, kind, text.as_bytes());
        let _ = s.write_all(&out);
        s.shutdown(Shutdown::Both);
        err(code, text)
    };
    if le32(&p, 0) != MAGIC {
        return Err(refuse(&mut stream, ErrorCode::ProtocolError, 0, "the peer does not speak the ftl-ipc socket protocol".into()));
    }
    if le16(&p, 4) != VERSION {
        return Err(refuse(&mut stream, ErrorCode::ProtocolError, 0, format!("unsupported protocol version {} (this side speaks {})", le16(&p, 4), VERSION)));
    }
    let peer_limits = Limits { capacity: le32(&p, 40), capacity_bytes: le32(&p, 44), max_message_bytes: le32(&p, 48), max_handles: le16(&p, 52) };
    if let Err(problem) = peer_limits.check(&Limits { capacity: u32::MAX, capacity_bytes: u32::MAX, max_message_bytes: u32::MAX, max_handles: u16::MAX }) {
        return Err(refuse(&mut stream, ErrorCode::ProtocolError, 0, format!("root limits: {}", problem)));
    }
    let peer_auth = le16(&p, 6) & 1 == 1;
    if peer_auth != options.secret.is_some() {
        let text = if options.secret.is_none() {
            "the peer requires a shared secret and none was configured"
        } else {
            "the peer did not offer the shared-secret handshake this side requires"
        };
        return Err(refuse(&mut stream, ErrorCode::AuthFailed, 1, text.into()));
    }
    if let Some(secret) = &options.secret {
        let (own_role, peer_role) = if client { (b'c', b's') } else { (b's', b'c') };
        let mut out = Vec::new();
        frame(&mut out, FRAME_AUTH, 0, 0, 0, &auth(secret, own_role, &nonce, &p[8..40]));
        stream.write_all(&out).map_err(io_failed)?;
        let theirs = handshake_frame(&mut stream, FRAME_AUTH, AUTH_BYTES)?;
        if !equal_constant_time(&theirs, &auth(secret, peer_role, &p[8..40], &nonce)) {
            return Err(refuse(&mut stream, ErrorCode::AuthFailed, 1, "the peer does not know the shared secret".into()));
        }
    }
    let peer_hb = le32(&p, 56);
    let timeout = match options.heartbeat_timeout_ms {
        Some(t) => Some(Duration::from_millis(t as u64)),
        None if peer_hb == 0 => None,
        None => Some(Duration::from_millis(3 * peer_hb.max(100).min(3_600_000) as u64)),
    };
    stream.set_read_timeout(timeout).map_err(|e| err(ErrorCode::ConnectionFailed, e.to_string()))?;
    let clone = |s: &Stream| s.try_clone().map_err(|e| err(ErrorCode::ConnectionFailed, e.to_string()));
    let (reader, writer) = (clone(&stream)?, clone(&stream)?);
    let heartbeat = if options.heartbeat_ms == 0 { None } else { Some(Duration::from_millis(options.heartbeat_ms as u64)) };
    let mut root = Chan::new(Kind::Channel, options.limits, peer_limits);
    root.credits = (peer_limits.capacity as u64, peer_limits.capacity_bytes as u64);
    root.granted = (options.limits.capacity as u64, options.limits.capacity_bytes as u64);
    let mut w = lock();
    let conn = w.next_conn;
    w.next_conn += 1;
    let mut chans = HashMap::new();
    chans.insert(0, root);
    w.conns.insert(
        conn,
        Conn {
            stream,
            client,
            next_id: if client { 1 } else { 2 },
            chans,
            out: Vec::new(),
            writing: false,
            writer: Arc::new(Condvar::new()),
            dead: None,
            options,
            peer_bytes: 0,
            last_sent: Instant::now(),
            failing: false,
            threads: 2,
        },
    );
    drop(w);
    std::thread::Builder::new().name(format!("ftl-ipc reader {}", conn)).spawn(move || reader_thread(conn, reader)).map_err(|e| err(ErrorCode::ResourceExhausted, e.to_string()))?;
    std::thread::Builder::new().name(format!("ftl-ipc writer {}", conn)).spawn(move || writer_thread(conn, writer, heartbeat)).map_err(|e| err(ErrorCode::ResourceExhausted, e.to_string()))?;
    Ok(Channel { conn, id: 0, theirs: false })
}

/// Connects to a listener and gives the root channel of the new connection.
pub fn connect(address: &Address, options: Options) -> Result<Channel> {
    let failed = |e: io::Error| err(ErrorCode::ConnectionFailed, format!("cannot connect to {}: {}", address, e)).with_cause(e);
    let stream = match address {
        Address::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(failed)?),
        Address::Tcp(a) => {
            let s = TcpStream::connect(a).map_err(failed)?;
            let _ = s.set_nodelay(true);
            Stream::Tcp(s)
        }
    };
    start(stream, true, options)
}

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A listening socket; each `accept` gives the root channel of one connection.
pub struct Listener {
    socket: Socket,
    options: Options,
    /// The bound address (a TCP port 0 resolved).
    pub address: Address,
}

impl Listener {
    /// Binds a Unix socket (mode 0600, in a directory only this user may enter; a stale socket
    /// left by a crash is replaced) or a TCP address.
    pub fn bind(address: &Address, options: Options) -> Result<Listener> {
        let failed = |e: io::Error| err(ErrorCode::ConnectionFailed, format!("cannot listen on {}: {}", address, e)).with_cause(e);
        let (socket, bound) = match address {
            Address::Unix(path) => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| std::path::Path::new("."));
                let meta = std::fs::metadata(dir).map_err(failed)?;
                let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(meta.uid());
                if meta.uid() != me || meta.mode() & 0o077 != 0 {
                    return Err(err(ErrorCode::InvalidArgument, format!("the socket directory {} may be entered by other users (mode {:o})", dir.display(), meta.mode() & 0o777)));
                }
                if let Ok(m) = std::fs::symlink_metadata(path) {
                    if !m.file_type().is_socket() {
                        return Err(err(ErrorCode::ConnectionFailed, format!("cannot listen on {}: the path exists and is not a socket", path.display())));
                    }
                    match UnixStream::connect(path) {
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                            let _ = std::fs::remove_file(path);
                        }
                        Ok(_) => return Err(err(ErrorCode::ConnectionFailed, format!("cannot listen on {}: another listener is accepting connections on it", path.display()))),
                        Err(e) => return Err(failed(e)),
                    }
                }
                let l = UnixListener::bind(path).map_err(failed)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
                (Socket::Unix(l), address.clone())
            }
            Address::Tcp(a) => {
                let l = TcpListener::bind(a).map_err(failed)?;
                let bound = l.local_addr().map_err(failed)?.to_string();
                (Socket::Tcp(l), Address::Tcp(bound))
            }
        };
        Ok(Listener { socket, options, address: bound })
    }

    /// Waits for a connection whose handshake succeeds (one that fails it, a wrong secret say,
    /// is closed and passed over); Err only when the listening socket itself fails. Handshakes
    /// run one at a time, each within `handshake_timeout_ms`.
    pub fn accept(&self) -> Result<Channel> {
        loop {
            match self.accept_one() {
                Err(e) if e.code == ErrorCode::ConnectionFailed && e.message.starts_with("accept on") => return Err(e),
                Err(_) => continue,
                Ok(ch) => return Ok(ch),
            }
        }
    }

    fn accept_one(&self) -> Result<Channel> {
        let failed = |e: io::Error| err(ErrorCode::ConnectionFailed, format!("accept on {} failed: {}", self.address, e)).with_cause(e);
        let stream = match &self.socket {
            Socket::Unix(l) => Stream::Unix(l.accept().map_err(failed)?.0),
            Socket::Tcp(l) => {
                let s = l.accept().map_err(failed)?.0;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        };
        start(stream, false, self.options.clone())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (Socket::Unix(_), Address::Unix(p)) = (&self.socket, &self.address) {
            let _ = std::fs::remove_file(p);
        }
    }
}

static PARENT: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// In a process started by `spawnProcess` or `ftl-ipc run`: the channels the parent handed
/// over on the descriptor in `FTL_IPC_FD`, by name. Call it once; a second call is CLOSED.
pub fn parent_channels(options: Options) -> Result<HashMap<String, Channel>> {
    let mut taken = PARENT.lock().unwrap_or_else(|p| p.into_inner());
    if taken.is_some() {
        return Err(err(ErrorCode::Closed, "parent_channels() was called already; keep the channels it gave"));
    }
    let fd: i32 = std::env::var("FTL_IPC_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err(ErrorCode::InvalidArgument, "FTL_IPC_FD is not set: this process was not started by spawnProcess or ftl-ipc run"))?;
    // Safety: the parent gave this descriptor to this process for exactly this; nothing else owns it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let root = start(Stream::Unix(stream), true, options)?;
    let timeout = Some(Duration::from_millis(10_000));
    let m = root.recv(timeout)?;
    if m.type_id != BOOTSTRAP_TYPE {
        return Err(err(ErrorCode::InvalidMessage, format!("the parent's first message has type {:#x}, not the bootstrap {:#x}", m.type_id, BOOTSTRAP_TYPE)));
    }
    let names = parse_names(&m.data).ok_or_else(|| err(ErrorCode::InvalidMessage, "the bootstrap's data is not a JSON array of names"))?;
    if names.len() != m.handles.len() {
        return Err(err(ErrorCode::InvalidMessage, format!("the bootstrap names {} channels but carries {} handles", names.len(), m.handles.len())));
    }
    let mut out = HashMap::new();
    for (name, h) in names.iter().zip(m.handles) {
        match h {
            Handle::Channel(ch) => {
                out.insert(name.clone(), ch);
            }
            _ => return Err(err(ErrorCode::InvalidMessage, format!("the bootstrap's handle {} is not a channel", name))),
        }
    }
    root.close();
    *taken = Some(names);
    Ok(out)
}

/// A JSON array of strings (what the bootstrap carries), or None.
fn parse_names(data: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(data).ok()?;
    let mut chars = text.trim().chars().peekable();
    let mut out = Vec::new();
    if chars.next()? != '[' {
        return None;
    }
    loop {
        while chars.peek().map(|c| c.is_whitespace() || *c == ',').unwrap_or(false) {
            chars.next();
        }
        match chars.next()? {
            ']' => return if chars.next().is_none() { Some(out) } else { None },
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            'u' => {
                                let h: String = (0..4).filter_map(|_| chars.next()).collect();
                                s.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
                            }
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            c => s.push(c),
                        },
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            _ => return None,
        }
    }
}

/// Waits until every connection of this process has written its output and had each CLOSE it
/// sent answered (or died), up to `timeout`: call it before the process exits.
pub fn flush_sockets(timeout: Duration) -> Result<()> {
    let deadline = Some(Instant::now() + timeout);
    let mut w = lock();
    loop {
        let busy = w.conns.values().any(|c| {
            c.dead.is_none() && (!c.out.is_empty() || c.writing || c.chans.values().any(|ch| ch.sent_close && !ch.got_close || ch.dirty))
        });
        if !busy {
            return Ok(());
        }
        let (g, more) = wait(w, deadline);
        w = g;
        if !more {
            return Err(err(ErrorCode::Timeout, format!("the sockets did not drain within {:?}", timeout)));
        }
    }
}
