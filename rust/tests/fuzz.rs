//! The malformed-frame corpus of test/wire/fuzz.test.ts over the vectors schema: random frames and
//! valid frames mutated (bytes flipped, cut, inserted, deleted; handles added or taken away) must
//! decode or fail with INVALID_MESSAGE and nothing else; what decodes must re-encode to the same
//! bytes (up to NaN payloads and left-out absent tail fields); and no decode may allocate more
//! than a small multiple of the frame it reads (a counting allocator measures each one).

mod common;

use common::vectors::*;
use common::*;
use ftl_ipc::wire::{decode_message, encode_message, MessageType};
use ftl_ipc::{ErrorCode, Handle, IpcError, Message};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// xorshift64*: a fixed seed, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// A length up to `cap`, often exactly `cap` (where off-by-one checks fail).
    fn len(&mut self, cap: usize) -> usize {
        if self.below(3) == 0 {
            cap
        } else {
            self.below(cap + 1)
        }
    }
    fn string(&mut self, cap: usize) -> String {
        let pool = ['a', 'é', '🙂', '\u{feff}', '\u{10ffff}', 'z', '\0'];
        let mut s = String::new();
        for _ in 0..self.len(cap) {
            let c = pool[self.below(pool.len())];
            if s.len() + c.len_utf8() > cap {
                break;
            }
            s.push(c);
        }
        s
    }
    fn float(&mut self) -> f64 {
        match self.below(6) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -0.0,
            _ => f64::from_bits(self.next()),
        }
    }
}

fn chan() -> ftl_ipc::Channel {
    ftl_ipc::Channel::closed()
}
fn pipe() -> ftl_ipc::PipeEnd {
    ftl_ipc::PipeEnd::closed()
}

fn point(r: &mut Rng) -> Point {
    Point { x: r.next() as i32, y: r.next() as i32 }
}

/// A valid message of any type of the schema, encoded.
fn any_message(r: &mut Rng) -> Message {
    let colors = [Color::Red, Color::Green, Color::Blue];
    let m = match r.below(8) {
        0 => encode_message(Empty {}, 0),
        1 => encode_message(
            Scalars {
                flag: r.coin(),
                i8: r.next() as i8,
                i16: r.next() as i16,
                i32: r.next() as i32,
                i64: r.next() as i64,
                u8: r.next() as u8,
                u16: r.next() as u16,
                u32: r.next() as u32,
                u64: r.next(),
                f32: r.float() as f32,
                f64: r.float(),
            },
            0,
        ),
        2 => encode_message(Text { text: r.string(16), blob: (0..r.len(4)).map(|_| r.next() as u8).collect() }, 0),
        3 => {
            let points = (0..r.len(3)).map(|_| point(r)).collect();
            let matrix = (0..r.len(2)).map(|_| (0..r.len(2)).map(|_| r.next() as u8).collect()).collect();
            let color = if r.coin() { Some(colors[r.below(3)]) } else { None };
            let label = if r.coin() { Some(r.string(8)) } else { None };
            let labeled = Labeled { point: point(r), label };
            encode_message(Containers { points, matrix, color, labeled, vec: shared::Vec { z: r.float() } }, 0)
        }
        4 => encode_message(
            vectors::Handles {
                first: chan(),
                maybe: if r.coin() { Some(chan()) } else { None },
                more: (0..r.len(2)).map(|_| chan()).collect(),
            },
            0,
        ),
        5 => encode_message(
            Pipes {
                source: pipe(),
                control: chan(),
                sinks: (0..r.len(2)).map(|_| pipe()).collect(),
                spare: if r.coin() { Some(pipe()) } else { None },
            },
            0,
        ),
        6 => encode_message(
            Evolving {
                a: r.next() as u8,
                b: if r.coin() { Some(r.string(4)) } else { None },
                c: if r.coin() { Some(r.next() as u16) } else { None },
            },
            0,
        ),
        _ => encode_message(Echo { text: r.string(16) }, 1 + r.below(1000) as u32),
    };
    m.expect("a valid value encodes")
}

fn random_handle(r: &mut Rng) -> Handle {
    handle_of(["channel", "producer", "consumer"][r.below(3)])
}

/// Decodes as the table of every message does (by type id), then re-encodes what decoded.
fn decode_and_reencode(m: Message) -> Result<Option<Message>, IpcError> {
    fn again<M: MessageType + std::fmt::Debug>(m: Message) -> Result<Option<Message>, IpcError> {
        let (txid, v) = decode_message::<M>(m)?;
        let has_nan = format!("{:?}", v).contains("NaN");
        let out = encode_message(v, txid).expect("a decoded value encodes");
        Ok(if has_nan { None } else { Some(out) })
    }
    match m.type_id {
        Empty::ID => again::<Empty>(m),
        Scalars::ID => again::<Scalars>(m),
        Text::ID => again::<Text>(m),
        Containers::ID => again::<Containers>(m),
        vectors::Handles::ID => again::<vectors::Handles>(m),
        Pipes::ID => again::<Pipes>(m),
        Evolving::ID => again::<Evolving>(m),
        Echo::ID => again::<Echo>(m),
        _ => unreachable!(),
    }
}

/// Decodes or fails cleanly; a success is the same message, and memory stays bounded.
fn decodes_or_rejects(m: Message) {
    let data = m.data.clone();
    let kinds: Vec<_> = m.handles.iter().map(kind_of).collect();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = decode_and_reencode(m);
    let used = PEAK.load(Ordering::Relaxed) - base;
    // Every value decoded is at most a few times its bytes (a String or Vec per item, each with
    // its header), plus the path and handle bookkeeping; 2 KiB covers the fixed part.
    assert!(used <= 2048 + 64 * data.len(), "decoding {} bytes allocated {}", data.len(), used);
    match result {
        Err(e) => assert_eq!(e.code, ErrorCode::InvalidMessage, "{} from {}", e, hex(&data)),
        Ok(None) => {}
        Ok(Some(out)) => {
            let n = out.data.len();
            assert!(n <= data.len() && data[..n] == out.data[..], "{} re-encodes to {}", hex(&data), hex(&out.data));
            // Only `0` presence bytes of absent tail fields may be left out (two at most here).
            assert!(data[n..].iter().all(|&b| b == 0) && data.len() - n <= 2, "{} re-encodes to {}", hex(&data), hex(&out.data));
            assert_eq!(out.handles.iter().map(kind_of).collect::<Vec<_>>(), kinds);
        }
    }
}

/// One test, so that no other thread allocates while a decode is measured.
#[test]
fn malformed_frames_decode_or_fail_cleanly_in_bounded_memory() {
    random_frames();
    mutated_frames();
    forged_count();
}

fn random_frames() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let ids = [Empty::ID, Scalars::ID, Text::ID, Containers::ID, vectors::Handles::ID, Pipes::ID, Evolving::ID, Echo::ID];
    for _ in 0..50_000 {
        let mut data = if r.coin() { vec![0x46, 0x49, 1, 0, 0, 0, 0, 0] } else { Vec::new() };
        for _ in 0..r.below(97) {
            data.push(r.next() as u8);
        }
        let handles = (0..r.below(4)).map(|_| random_handle(&mut r)).collect();
        decodes_or_rejects(Message { type_id: ids[r.below(ids.len())], data, handles });
    }
}

fn mutated_frames() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..150_000 {
        let mut m = any_message(&mut r);
        for _ in 0..1 + r.below(3) {
            let at = r.below(m.data.len() + 1);
            match r.below(5) {
                0 if at < m.data.len() => m.data[at] ^= 1 + r.below(255) as u8,
                1 => m.data.truncate(at),
                2 => m.data.insert(at, r.next() as u8),
                3 if at < m.data.len() => {
                    m.data.remove(at);
                }
                4 => {
                    let delta = r.below(5) as isize - 2;
                    if delta > 0 {
                        for _ in 0..delta {
                            m.handles.push(random_handle(&mut r));
                        }
                    } else {
                        let keep = m.handles.len().saturating_sub((-delta) as usize);
                        m.handles.truncate(keep);
                    }
                }
                _ => {}
            }
        }
        decodes_or_rejects(m);
    }
}

fn forged_count() {
    // Containers whose `points` claims u32::MAX items: refused before any Vec is sized by it.
    let data = unhex("4649010000000000 ffffffff");
    decodes_or_rejects(Message { type_id: Containers::ID, data, handles: Vec::new() });
}
