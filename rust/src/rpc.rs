//! RPC over a channel, as the TypeScript `RpcClient` and `RpcServer` (docs/wire-format.md):
//! transaction ids, a window of half this end's queue, deadlines that travel, cancels, error
//! replies and pushes both ways. Generated clients and servers (`ftl-ipc gen --lang rust`) are
//! thin typed layers over `RpcClient` and `serve`.

use crate::error::{ErrorCode, IpcError, Result};
use crate::transport::Channel;
use crate::wire::{self, CallType, Control, Message, MessageType, FLAG_REPLY};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Options of one call (and a client's defaults).
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// TIMEOUT when no reply came in this long, waiting for the window included; it travels
    /// as the request's deadline, and the client sends a cancel when it passes.
    pub timeout: Option<Duration>,
    /// A W3C `traceparent` to send with the request.
    pub traceparent: Option<String>,
}

enum Slot {
    Waiting,
    Done(Message),
    /// Timed out: the late reply is dropped when it comes, and only then frees the window.
    Abandoned,
}

struct ClientState {
    next_txid: u32,
    slots: HashMap<u32, Slot>,
    in_flight: usize,
    window: usize,
    events: VecDeque<Message>,
    closed: Option<IpcError>,
}

struct ClientInner {
    channel: Channel,
    state: Mutex<ClientState>,
    changed: Condvar,
}

impl ClientInner {
    fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on `changed` until `deadline`; false once it passed.
    fn wait<'a>(&self, g: MutexGuard<'a, ClientState>, deadline: Option<Instant>) -> (MutexGuard<'a, ClientState>, bool) {
        match deadline {
            None => (self.changed.wait(g).unwrap_or_else(|p| p.into_inner()), true),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return (g, false);
                }
                (self.changed.wait_timeout(g, d - now).unwrap_or_else(|p| p.into_inner()).0, true)
            }
        }
    }
}

/// The client end of an RPC channel. Calls may come from many threads at once; one thread per
/// client receives (replies to their callers, pushes to `recv_event`).
pub struct RpcClient {
    inner: Arc<ClientInner>,
    options: CallOptions,
}

/// A call that was sent and waits for its reply (`RpcClient::start`).
pub struct Pending<C: CallType> {
    inner: Arc<ClientInner>,
    txid: u32,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    _call: std::marker::PhantomData<fn() -> C>,
}

fn timeout_error(name: &str, timeout: Option<Duration>) -> IpcError {
    IpcError::new(ErrorCode::Timeout, format!("{} got no reply within {:?}", name, timeout.unwrap_or_default()))
}

impl RpcClient {
    pub fn new(channel: Channel, options: CallOptions) -> RpcClient {
        // Replies never find the queue full because of this client's own calls.
        let window = (channel.limits().capacity as usize / 2).max(1);
        let inner = Arc::new(ClientInner {
            channel,
            state: Mutex::new(ClientState {
                next_txid: 1,
                slots: HashMap::new(),
                in_flight: 0,
                window,
                events: VecDeque::new(),
                closed: None,
            }),
            changed: Condvar::new(),
        });
        let reader = inner.clone();
        std::thread::Builder::new()
            .name("ftl-ipc rpc client".into())
            .spawn(move || receive(reader))
            .expect("a thread for the client's replies");
        RpcClient { inner, options }
    }

    /// The options calls without their own use.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// Calls and waits for the reply: an error reply is REMOTE_ERROR naming the peer's code.
    pub fn call<C: CallType>(&self, value: C, options: &CallOptions) -> Result<C::Reply> {
        self.start(value, options)?.wait()
    }

    /// Sends a call and returns at once (waiting only for room in the window): many calls can
    /// be in flight from one thread, each awaited with `Pending::wait`.
    pub fn start<C: CallType>(&self, value: C, options: &CallOptions) -> Result<Pending<C>> {
        let deadline = options.timeout.map(|t| Instant::now() + t);
        let mut m = wire::encode_message(value, 1)?;
        let inner = &self.inner;
        let mut s = inner.lock();
        let txid = loop {
            if let Some(e) = &s.closed {
                return Err(e.shallow_clone());
            }
            if s.in_flight < s.window {
                let mut txid = s.next_txid;
                while txid == 0 || s.slots.contains_key(&txid) {
                    txid = txid.wrapping_add(1);
                }
                s.next_txid = txid.wrapping_add(1);
                s.slots.insert(txid, Slot::Waiting);
                s.in_flight += 1;
                break txid;
            }
            let (g, more) = inner.wait(s, deadline);
            s = g;
            if !more {
                return Err(timeout_error(C::NAME, options.timeout));
            }
        };
        drop(s);
        m.data[4..8].copy_from_slice(&txid.to_le_bytes());
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            wire::with_deadline(&mut m, left.as_millis().min(u32::MAX as u128) as u32);
        }
        if let Some(t) = &options.traceparent {
            wire::with_trace(&mut m, &wire::TraceContext::parse(t)?);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = inner.channel.send_wait(m, left) {
            let mut s = inner.lock();
            s.slots.remove(&txid);
            s.in_flight -= 1;
            inner.changed.notify_all();
            return Err(if e.code == ErrorCode::Timeout { timeout_error(C::NAME, options.timeout) } else { e });
        }
        Ok(Pending { inner: inner.clone(), txid, deadline, timeout: options.timeout, _call: std::marker::PhantomData })
    }

    /// Sends a push at once: BACKPRESSURE when the server's queue is full.
    pub fn push<M: MessageType>(&self, value: M) -> Result<()> {
        self.inner.channel.send(wire::encode_message(value, 0)?)
    }

    /// Sends a push, waiting up to `timeout` while the server's queue is full.
    pub fn push_wait<M: MessageType>(&self, value: M, timeout: Option<Duration>) -> Result<()> {
        self.inner.channel.send_wait(wire::encode_message(value, 0)?, timeout)
    }

    /// The next push from the server, undecoded (generated clients decode it).
    pub fn recv_event(&self, timeout: Option<Duration>) -> Result<Message> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.inner.lock();
        loop {
            if let Some(m) = s.events.pop_front() {
                return Ok(m);
            }
            if let Some(e) = &s.closed {
                return Err(e.shallow_clone());
            }
            let (g, more) = self.inner.wait(s, deadline);
            s = g;
            if !more {
                return Err(IpcError::new(ErrorCode::Timeout, format!("no push within {:?}", timeout.unwrap_or_default())));
            }
        }
    }

    pub fn close(&self) {
        self.inner.channel.close();
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        // Ends the receiving thread too.
        self.inner.channel.close();
    }
}

impl<C: CallType> Pending<C> {
    pub fn txid(&self) -> u32 {
        self.txid
    }

    /// Waits for the reply, until the call's deadline.
    pub fn wait(self) -> Result<C::Reply> {
        let inner = &self.inner;
        let mut s = inner.lock();
        loop {
            if let Some(Slot::Done(_)) = s.slots.get(&self.txid) {
                let m = match s.slots.remove(&self.txid) {
                    Some(Slot::Done(m)) => m,
                    _ => unreachable!("matched above"),
                };
                drop(s);
                return wire::decode_reply::<C>(m)?;
            }
            if let Some(e) = s.closed.as_ref().map(IpcError::shallow_clone) {
                s.slots.remove(&self.txid);
                return Err(e);
            }
            let (g, more) = inner.wait(s, self.deadline);
            s = g;
            if !more {
                if let Some(slot) = s.slots.get_mut(&self.txid) {
                    *slot = Slot::Abandoned;
                }
                drop(s);
                // Best effort: a full queue or a closed channel makes a cancel pointless.
                let _ = inner.channel.send(wire::encode_cancel(C::ID, self.txid));
                return Err(timeout_error(C::NAME, self.timeout));
            }
        }
    }
}

/// The client's receiving loop: replies to their slots, pushes to the event queue.
fn receive(inner: Arc<ClientInner>) {
    loop {
        let m = match inner.channel.recv(None) {
            Ok(m) => m,
            Err(e) => {
                let mut s = inner.lock();
                s.closed = Some(e);
                inner.changed.notify_all();
                return;
            }
        };
        let mut s = inner.lock();
        let is_reply = m.data.len() >= wire::HEADER_BYTES && m.data[3] & FLAG_REPLY != 0;
        if !is_reply {
            s.events.push_back(m);
            inner.changed.notify_all();
            continue;
        }
        let txid = u32::from_le_bytes([m.data[4], m.data[5], m.data[6], m.data[7]]);
        match s.slots.get_mut(&txid) {
            Some(slot @ Slot::Waiting) => {
                *slot = Slot::Done(m);
                s.in_flight -= 1;
            }
            Some(Slot::Abandoned) => {
                s.slots.remove(&txid);
                s.in_flight -= 1;
            }
            // A reply to no call of ours: dropped (its handles closed with it).
            _ => {}
        }
        inner.changed.notify_all();
    }
}

/// What a handler sees of its call.
pub struct CallContext {
    /// When the client gives up (its timeout, as measured from receipt).
    pub deadline: Option<Instant>,
    /// The caller's W3C trace context, when the request carried a valid one.
    pub traceparent: Option<String>,
    cancelled: Arc<AtomicBool>,
    channel: Arc<Channel>,
}

impl CallContext {
    /// True once the client cancelled the call (as it does when its timeout passes): stop and
    /// return an error. Only the client's cancel sets it, so a handler never ends a call before
    /// the client's own timeout does (`deadline` says when that is).
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Sends a push from the server to the client on this channel (BACKPRESSURE when full).
    pub fn push<M: MessageType>(&self, value: M) -> Result<()> {
        self.channel.send(wire::encode_message(value, 0)?)
    }

    /// Sends a push, waiting up to `timeout` while the client's queue is full.
    pub fn push_wait<M: MessageType>(&self, value: M, timeout: Option<Duration>) -> Result<()> {
        self.channel.send_wait(wire::encode_message(value, 0)?, timeout)
    }
}

type Run<H> = Box<dyn FnOnce(&H, &CallContext) -> Option<Message> + Send>;

/// One decoded request or push, ready to run on a worker (made by generated code).
pub struct Job<H> {
    txid: u32,
    reply_id: u32,
    run: Run<H>,
}

fn error_reply(reply_id: u32, txid: u32, e: &IpcError) -> Message {
    wire::encode_error_reply(reply_id, txid, e.code.as_str(), &e.message)
}

impl<H> Job<H> {
    pub fn call<C: CallType>(txid: u32, f: impl FnOnce(&H, &CallContext) -> Result<C::Reply> + Send + 'static) -> Job<H> {
        let run = move |h: &H, c: &CallContext| {
            Some(match f(h, c) {
                Ok(reply) => wire::encode_reply::<C>(txid, reply).unwrap_or_else(|e| error_reply(C::REPLY_ID, txid, &e)),
                Err(e) => error_reply(C::REPLY_ID, txid, &e),
            })
        };
        Job { txid, reply_id: C::REPLY_ID, run: Box::new(run) }
    }

    pub fn push(f: impl FnOnce(&H, &CallContext) -> Result<()> + Send + 'static) -> Job<H> {
        let run = move |h: &H, c: &CallContext| {
            if let Err(e) = f(h, c) {
                ERRORS.with(|errors| errors.borrow_mut().push(e));
            }
            None
        };
        Job { txid: 0, reply_id: 0, run: Box::new(run) }
    }
}

thread_local! {
    /// A push handler's error, picked up by the worker that ran it.
    static ERRORS: std::cell::RefCell<Vec<IpcError>> = std::cell::RefCell::new(Vec::new());
}

/// The INVALID_MESSAGE of a message no side of the protocol receives.
pub fn unexpected(m: &Message) -> IpcError {
    IpcError::new(ErrorCode::InvalidMessage, format!("(message): type id {} is not a message this side receives", m.type_id))
}

/// What `serve` does with a request that does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInvalid {
    /// Close the channel and return the error (the default).
    Close,
    /// Skip it (and report it to `on_error`).
    Ignore,
}

#[derive(Clone)]
pub struct ServeOptions {
    /// Handlers run at once at most (worker threads). Default 8.
    pub concurrency: usize,
    pub on_invalid: OnInvalid,
    /// Told of every handler error (a call's goes back as an error reply too) and invalid request.
    pub on_error: Option<Arc<dyn Fn(&IpcError) + Send + Sync>>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions { concurrency: 8, on_invalid: OnInvalid::Close, on_error: None }
    }
}

struct Queued<H> {
    job: Job<H>,
    context: CallContext,
}

struct Work<H> {
    queue: VecDeque<Queued<H>>,
    /// Jobs taken from the channel and not finished.
    pending: usize,
    cancels: HashMap<u32, Arc<AtomicBool>>,
    done: bool,
}

/// Serves `channel` until the client closes it: requests are decoded here, run on
/// `concurrency` worker threads, and answered as each handler returns (a panic is an error
/// reply HANDLER_FAILED). Taking from the channel waits while that many jobs are pending, so the
/// channel's bound holds.
pub fn serve<H: Send + Sync + 'static>(
    channel: Channel,
    handlers: Arc<H>,
    options: ServeOptions,
    is_call: fn(u32) -> Option<bool>,
    decode: fn(Message) -> Result<Job<H>>,
) -> Result<()> {
    let channel = Arc::new(channel);
    let concurrency = options.concurrency.max(1);
    let limit = (channel.limits().capacity as usize).max(concurrency);
    let work = Arc::new((Mutex::new(Work { queue: VecDeque::new(), pending: 0, cancels: HashMap::new(), done: false }), Condvar::new()));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (work, handlers, channel, on_error) = (work.clone(), handlers.clone(), channel.clone(), options.on_error.clone());
        workers.push(std::thread::spawn(move || loop {
            let queued = {
                let mut w = lock_work::<H>(&work);
                loop {
                    if let Some(q) = w.queue.pop_front() {
                        break q;
                    }
                    if w.done {
                        return;
                    }
                    w = work.1.wait(w).unwrap_or_else(|p| p.into_inner());
                }
            };
            let Queued { job, context } = queued;
            let (txid, reply_id) = (job.txid, job.reply_id);
            let reply = if txid != 0 && context.cancelled.load(Ordering::Relaxed) {
                Some(error_reply(reply_id, txid, &IpcError::new(ErrorCode::Aborted, "the client cancelled the call before it ran")))
            } else {
                match catch_unwind(AssertUnwindSafe(|| (job.run)(&handlers, &context))) {
                    Ok(reply) => reply,
                    Err(panic) => {
                        let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "the handler panicked".into());
                        let e = IpcError::new(ErrorCode::Aborted, text.clone());
                        if let Some(f) = &on_error {
                            f(&e);
                        }
                        (txid != 0).then(|| wire::encode_error_reply(reply_id, txid, "HANDLER_FAILED", &text))
                    }
                }
            };
            for e in ERRORS.with(|errors| std::mem::take(&mut *errors.borrow_mut())) {
                if let Some(f) = &on_error {
                    f(&e);
                }
            }
            if let Some(r) = reply {
                if r.data[3] & wire::FLAG_ERROR != 0 {
                    if let Some(f) = &on_error {
                        f(&IpcError::new(ErrorCode::RemoteError, format!("call {} answered with an error", txid)));
                    }
                }
                // Fits: the client's window is half its queue. A closed channel ends serving.
                let _ = channel.send_wait(r, None);
            }
            let mut w = lock_work::<H>(&work);
            w.pending -= 1;
            w.cancels.remove(&txid);
            work.1.notify_all();
        }));
    }
    let result = (|| loop {
        {
            let mut w = lock_work::<H>(&work);
            while w.pending >= limit {
                w = work.1.wait(w).unwrap_or_else(|p| p.into_inner());
            }
        }
        let m = match channel.recv(None) {
            Ok(m) => m,
            Err(e) if e.code == ErrorCode::PeerClosed || e.code == ErrorCode::Closed => return Ok(()),
            Err(e) => return Err(e),
        };
        let call = is_call(m.type_id);
        let decoded = wire::read_control(m, call).and_then(|c| match c {
            Control::Cancel(txid) => Ok(Err(txid)),
            Control::Request { message, timeout_ms, traceparent } => {
                let deadline = timeout_ms.map(|t| Instant::now() + Duration::from_millis(t as u64));
                decode(message).map(|job| Ok((job, deadline, traceparent)))
            }
        });
        match decoded {
            Ok(Err(txid)) => {
                if let Some(flag) = lock_work::<H>(&work).cancels.get(&txid) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            Ok(Ok((job, deadline, traceparent))) => {
                let cancelled = Arc::new(AtomicBool::new(false));
                let mut w = lock_work::<H>(&work);
                if job.txid != 0 {
                    w.cancels.insert(job.txid, cancelled.clone());
                }
                w.pending += 1;
                w.queue.push_back(Queued { job, context: CallContext { deadline, traceparent, cancelled, channel: channel.clone() } });
                work.1.notify_all();
            }
            Err(e) => {
                if let Some(f) = &options.on_error {
                    f(&e);
                }
                if options.on_invalid == OnInvalid::Close {
                    channel.close();
                    return Err(e);
                }
            }
        }
    })();
    lock_work::<H>(&work).done = true;
    work.1.notify_all();
    for t in workers {
        let _ = t.join();
    }
    channel.close();
    result
}

fn lock_work<H>(w: &(Mutex<Work<H>>, Condvar)) -> MutexGuard<'_, Work<H>> {
    w.0.lock().unwrap_or_else(|p| p.into_inner())
}
