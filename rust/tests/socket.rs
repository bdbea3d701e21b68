//! The Rust socket transport and RPC against themselves and against raw peers: exact bounds,
//! close and death, the secret, moved ends, cancels and deadlines, and peers that break the
//! protocol or the budgets (each closing only its connection).

#[path = "generated/rpctest.rs"]
mod rpctest;

use ftl_ipc::rpc::{CallContext, CallOptions, ServeOptions};
use ftl_ipc::{connect, Address, Channel, ErrorCode, Handle, Limits, Listener, Message, Options, Result};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A socket path in a fresh directory of mode 0700.
fn private_path() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ftl-ipc-rust-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir.join("s.sock")
}

/// A listener and a connected pair of root channels (client end, server end).
fn pair(client: Options, server: Options) -> (Channel, Channel, Listener) {
    let listener = Listener::bind(&Address::Unix(private_path()), server).unwrap();
    let address = listener.address.clone();
    let t = std::thread::spawn(move || connect(&address, client));
    let s = listener.accept().unwrap();
    (t.join().unwrap().unwrap(), s, listener)
}

const SECOND: Option<Duration> = Some(Duration::from_secs(5));

fn msg(s: &str) -> Message {
    Message::new(1, s.as_bytes().to_vec())
}

#[test]
fn bounds_are_exact_and_close_comes_after_the_messages() {
    let small = Options { limits: Limits { capacity: 4, ..Limits::default() }, ..Options::default() };
    let (c, s, _l) = pair(Options::default(), small);
    for i in 0..4 {
        c.send(msg(&format!("m{}", i))).unwrap();
    }
    assert_eq!(c.send(msg("full")).unwrap_err().code, ErrorCode::Backpressure);
    assert_eq!(c.send_wait(msg("full"), Some(Duration::from_millis(50))).unwrap_err().code, ErrorCode::Timeout);
    assert_eq!(s.recv(SECOND).unwrap().data, b"m0");
    c.send_wait(msg("m4"), SECOND).unwrap();
    c.close();
    let rest: Vec<_> = (0..4).map(|_| s.recv(SECOND).unwrap().data).collect();
    assert_eq!(rest, [b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec(), b"m4".to_vec()]);
    assert_eq!(s.recv(SECOND).unwrap_err().code, ErrorCode::PeerClosed);
    assert_eq!(s.stats().received, 5);
    assert_eq!(c.send(msg("late")).unwrap_err().code, ErrorCode::Closed);
}

#[test]
fn byte_credits_and_message_size() {
    let limits = Limits { capacity: 100, capacity_bytes: 10, max_message_bytes: 8, max_handles: 0 };
    let (c, s, _l) = pair(Options::default(), Options { limits, ..Options::default() });
    assert_eq!(c.send(Message::new(1, vec![0; 9])).unwrap_err().code, ErrorCode::TooLarge);
    c.send(Message::new(1, vec![0; 8])).unwrap();
    assert_eq!(c.send(Message::new(1, vec![0; 3])).unwrap_err().code, ErrorCode::Backpressure);
    c.send(Message::new(1, vec![0; 2])).unwrap();
    s.recv(SECOND).unwrap();
    c.send_wait(Message::new(1, vec![0; 8]), SECOND).unwrap();
}

#[test]
fn close_counts_what_arrived_as_sent() {
    let (c, s, _l) = pair(Options::default(), Options::default());
    for _ in 0..3 {
        c.send(msg("x")).unwrap();
    }
    s.recv(SECOND).unwrap();
    // All three arrived before the close, one read: none of them counts as dropped.
    std::thread::sleep(Duration::from_millis(100));
    s.close();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.send(msg("after")).err().map(|e| e.code) != Some(ErrorCode::PeerClosed) {
        assert!(Instant::now() < deadline, "the close did not arrive");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Sends that raced the close went out and were dropped there: moved from sent to dropped.
    assert_eq!(c.stats().sent, 3, "the three that arrived stay sent");
}

#[test]
fn the_secret_must_match() {
    let with = |s: &str| Options { secret: Some(s.as_bytes().to_vec()), ..Options::default() };
    let (c, s, l) = pair(with("one"), with("one"));
    c.send(msg("ok")).unwrap();
    assert_eq!(s.recv(SECOND).unwrap().data, b"ok");
    drop((c, s, l));
    for (client, server) in [(with("one"), with("two")), (Options::default(), with("two")), (with("one"), Options::default())] {
        let listener = Listener::bind(&Address::Unix(private_path()), server).unwrap();
        let address = listener.address.clone();
        std::thread::spawn(move || drop(listener.accept()));
        assert_eq!(connect(&address, client).unwrap_err().code, ErrorCode::AuthFailed);
    }
}

#[test]
fn ends_move_both_ways() {
    let (c, s, _l) = pair(Options::default(), Options::default());
    // An end made here, sent to the peer, and the peer sends one of its own back over it.
    let (mine, theirs) = c.open_channel(Limits::pair()).unwrap();
    assert_eq!(mine.send(msg("early")).unwrap_err().code, ErrorCode::Backpressure);
    c.send(Message { type_id: 7, data: b"carrier".to_vec(), handles: vec![Handle::Channel(theirs)] }).unwrap();
    let got = s.recv(SECOND).unwrap();
    let far = match got.handles.into_iter().next() {
        Some(Handle::Channel(ch)) => ch,
        other => panic!("{:?}", other),
    };
    far.send(msg("hello")).unwrap();
    assert_eq!(mine.recv(SECOND).unwrap().data, b"hello");
    // The received end forwarded on: a bridge here (server side) to the client and back.
    let (a, b) = s.open_channel(Limits::pair()).unwrap();
    s.send(Message { type_id: 8, data: vec![], handles: vec![Handle::Channel(b)] }).unwrap();
    let via = match c.recv(SECOND).unwrap().handles.into_iter().next() {
        Some(Handle::Channel(ch)) => ch,
        other => panic!("{:?}", other),
    };
    via.send(Message { type_id: 9, data: vec![], handles: vec![Handle::Channel(mine)] }).unwrap();
    let bridged = match a.recv(SECOND).unwrap().handles.into_iter().next() {
        Some(Handle::Channel(ch)) => ch,
        other => panic!("{:?}", other),
    };
    bridged.send(msg("through two hops")).unwrap();
    assert_eq!(far.recv(SECOND).unwrap().data, b"through two hops");
    far.send(msg("and back")).unwrap();
    assert_eq!(bridged.recv(SECOND).unwrap().data, b"and back");
    // The pair's bound holds through the bridge: 32 in flight, then BACKPRESSURE.
    for i in 0..32 {
        far.send_wait(msg(&i.to_string()), SECOND).unwrap();
    }
    let t0 = Instant::now();
    while far.send(msg("more")).is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(5), "no bound");
        std::thread::sleep(Duration::from_millis(5));
    }
    far.close();
    let mut n = 0;
    while bridged.recv(SECOND).is_ok() {
        n += 1;
    }
    assert!(n >= 32, "{} arrived", n);
}

struct Work;

impl rpctest::WorkHandlers for Work {
    fn add(&self, v: rpctest::Add, _: &CallContext) -> Result<rpctest::AddReply> {
        Ok(rpctest::AddReply { value: v.value + 1 })
    }
    fn hang(&self, v: rpctest::Hang, c: &CallContext) -> Result<rpctest::HangReply> {
        while !c.cancelled() {
            std::thread::sleep(Duration::from_millis(2));
        }
        c.push(rpctest::Aborted { tag: v.tag, code: "ABORTED".into(), deadline: c.deadline.is_some() })?;
        Err(ftl_ipc::IpcError::new(ErrorCode::Aborted, "cancelled"))
    }
    fn noisy(&self, v: rpctest::Noisy, c: &CallContext) -> Result<rpctest::NoisyReply> {
        c.push(rpctest::Note { value: v.value })?;
        Ok(rpctest::NoisyReply { value: v.value })
    }
}

#[test]
fn rpc_calls_pushes_deadlines_and_cancels() {
    let (c, s, _l) = pair(Options::default(), Options::default());
    let server = std::thread::spawn(move || rpctest::serve_work(s, Work, ServeOptions::default()));
    let client = rpctest::WorkClient::new(c);
    assert_eq!(client.add(rpctest::Add { value: 41 }).unwrap().value, 42);
    assert_eq!(client.noisy(rpctest::Noisy { value: 5 }).unwrap().value, 5);
    match client.recv(SECOND).unwrap() {
        rpctest::WorkEvent::Note(n) => assert_eq!(n.value, 5),
        other => panic!("{:?}", other),
    }
    let short = CallOptions { timeout: Some(Duration::from_millis(100)), traceparent: None };
    let t0 = Instant::now();
    assert_eq!(client.hang_with(rpctest::Hang { tag: 3 }, &short).unwrap_err().code, ErrorCode::Timeout);
    // The 100 ms timeout, not the handler, ends the call (loose: the machine may be loaded).
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    match client.recv(SECOND).unwrap() {
        rpctest::WorkEvent::Aborted(a) => assert_eq!((a.tag, a.deadline), (3, true)),
        other => panic!("{:?}", other),
    }
    // Many threads at once, each with its own calls.
    let client = std::sync::Arc::new(client);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || (0..500).all(|i| client.add(rpctest::Add { value: t * 1000 + i }).unwrap().value == t * 1000 + i + 1))
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()));
    drop(client);
    server.join().unwrap().unwrap();
}

/// A raw peer: our HELLO (no secret, root capacity 1), then whatever the test writes.
fn raw_peer(listener_options: Options) -> (UnixStream, std::thread::JoinHandle<Result<Channel>>) {
    let listener = Listener::bind(&Address::Unix(private_path()), listener_options).unwrap();
    let mut s = UnixStream::connect(match &listener.address {
        Address::Unix(p) => p,
        _ => unreachable!(),
    })
    .unwrap();
    let t = std::thread::spawn(move || listener.accept());
    let mut hello = vec![60, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    hello.extend_from_slice(&0x316c_7466u32.to_le_bytes());
    hello.extend_from_slice(&[2, 0, 0, 0]);
    hello.extend_from_slice(&[7; 32]);
    for v in [1u32, 1024, 1024] {
        hello.extend_from_slice(&v.to_le_bytes());
    }
    hello.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    s.write_all(&hello).unwrap();
    let mut theirs = [0u8; 76];
    s.read_exact(&mut theirs).unwrap();
    (s, t)
}

/// Reads frames until the ERROR one; gives its text.
fn error_text(s: &mut UnixStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        let mut p = vec![0u8; u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize];
        s.read_exact(&mut p).unwrap();
        if h[4] == 7 {
            return String::from_utf8(p).unwrap();
        }
    }
}

fn header(length: u32, ftype: u8, handles: u16, id: u32, arg: u32) -> Vec<u8> {
    let mut h = length.to_le_bytes().to_vec();
    h.extend_from_slice(&[ftype, 0]);
    h.extend_from_slice(&handles.to_le_bytes());
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&arg.to_le_bytes());
    h
}

#[test]
fn protocol_violations_close_only_their_connection() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (header(0, 9, 0, 0, 0), "unknown frame type 9"),
        (header(0, 5, 0, 77, 0), "unknown channel id 77"),
        (header(1 << 30, 3, 0, 0, 1), "maxMessageBytes"),
        ([header(1, 3, 0, 0, 1), vec![0], header(1, 3, 0, 0, 1), vec![0]].concat(), "beyond the credits"),
        ([header(4, 4, 0, 0, 5), vec![0; 4]].concat(), "CREDIT on channel 0 raises the credits"),
    ];
    for (bytes, expected) in cases {
        let one = Options { limits: Limits { capacity: 1, ..Limits::default() }, ..Options::default() };
        let (mut s, accepted) = raw_peer(one);
        let root = accepted.join().unwrap().unwrap();
        s.write_all(&bytes).unwrap();
        let text = error_text(&mut s);
        assert!(text.contains(expected), "{:?} does not say {:?}", text, expected);
        let t0 = Instant::now();
        while root.recv(Some(Duration::from_millis(10))).err().map(|e| e.code) != Some(ErrorCode::PeerClosed) {
            assert!(t0.elapsed() < Duration::from_secs(5));
        }
    }
}

#[test]
fn channels_the_peer_opens_stay_within_max_peer_bytes() {
    let budget = Options { max_peer_bytes: 3 << 20, ..Options::default() };
    let (mut s, accepted) = raw_peer(budget);
    let _root = accepted.join().unwrap().unwrap();
    // Two MSGs, each opening a channel of 1 MiB + 64 × 1024 bytes: the second passes 3 MiB.
    let descriptor = |id: u32| {
        let mut d = Vec::new();
        for v in [id, 1024, 1 << 20, 65536] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&[64, 0, 0, 0]);
        d.extend_from_slice(&[0; 44]);
        d
    };
    let mut frames = Vec::new();
    for id in [1, 3, 5] {
        frames.extend(header(64, 3, 1, 0, 1));
        frames.extend(descriptor(id));
    }
    s.write_all(&frames).unwrap();
    assert!(error_text(&mut s).contains("exceeds the 3145728 bytes allowed"));
}

#[test]
fn a_silent_peer_is_dropped_by_the_heartbeat() {
    let quick = Options { heartbeat_timeout_ms: Some(300), ..Options::default() };
    let (_s, accepted) = raw_peer(quick);
    let root = accepted.join().unwrap().unwrap();
    let t0 = Instant::now();
    assert_eq!(root.recv(SECOND).unwrap_err().code, ErrorCode::PeerClosed);
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{:?}", waited);
}
