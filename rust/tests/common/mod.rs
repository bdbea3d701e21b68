//! What the vector and fuzz tests share: the generated modules of test/vectors, a small JSON
//! reader (std only) and values built from the vectors' JSON.
#![allow(dead_code)]

#[path = "../generated/shared.rs"]
pub mod shared;
#[path = "../generated/vectors.rs"]
pub mod vectors;

use ftl_ipc::{Channel, Handle, PipeEnd};
pub use ftl_ipc::json::Json;

pub fn read_json(path: &str) -> Json {
    let full = format!("{}/../{}", env!("CARGO_MANIFEST_DIR"), path);
    Json::parse(&std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}")))
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

/// Placeholder handles of the kinds a vector names ("channel", "producer", "consumer").
pub fn handle_of(kind: &str) -> Handle {
    match kind {
        "channel" => Handle::Channel(Channel::closed()),
        "producer" => Handle::Producer(PipeEnd::closed()),
        "consumer" => Handle::Consumer(PipeEnd::closed()),
        other => panic!("unknown handle kind {other}"),
    }
}

pub fn handles_of(v: &Json) -> Vec<Handle> {
    v.get("handles").map(|h| h.list().iter().map(|k| handle_of(k.str())).collect()).unwrap_or_default()
}

pub fn kind_of(h: &Handle) -> &'static str {
    match h {
        Handle::Channel(_) => "channel",
        Handle::Producer(_) => "producer",
        Handle::Consumer(_) => "consumer",
    }
}

// Values of the vectors schema from their JSON (the vectors' "value").

use shared::Vec as Vec3;
use vectors::*;

fn opt<T>(v: &Json, key: &str, f: impl FnOnce(&Json) -> T) -> Option<T> {
    v.get(key).map(f)
}

fn string(v: &Json) -> String {
    v.str().to_owned()
}

pub fn point(v: &Json) -> Point {
    Point { x: v.at("x").int() as i32, y: v.at("y").int() as i32 }
}

pub fn labeled(v: &Json) -> Labeled {
    Labeled { point: point(v.at("point")), label: opt(v, "label", string) }
}

pub fn color(v: &Json) -> Color {
    Color::from_u32(v.int() as u32).unwrap()
}

pub fn scalars(v: &Json) -> Scalars {
    Scalars {
        flag: v.at("flag").boolean(),
        i8: v.at("i8").int() as i8,
        i16: v.at("i16").int() as i16,
        i32: v.at("i32").int() as i32,
        i64: v.at("i64").int() as i64,
        u8: v.at("u8").int() as u8,
        u16: v.at("u16").int() as u16,
        u32: v.at("u32").int() as u32,
        u64: v.at("u64").int() as u64,
        f32: v.at("f32").float() as f32,
        f64: v.at("f64").float(),
    }
}

pub fn text(v: &Json) -> Text {
    Text { text: string(v.at("text")), blob: unhex(v.at("blob").str()) }
}

pub fn containers(v: &Json) -> Containers {
    Containers {
        points: v.at("points").list().iter().map(point).collect(),
        matrix: v.at("matrix").list().iter().map(|r| r.list().iter().map(|x| x.int() as u8).collect()).collect(),
        color: opt(v, "color", color),
        labeled: labeled(v.at("labeled")),
        vec: Vec3 { z: v.at("vec").at("z").float() },
    }
}

fn chan(_: &Json) -> Channel {
    Channel::closed()
}

fn pipe(_: &Json) -> PipeEnd {
    PipeEnd::closed()
}

pub fn handles(v: &Json) -> vectors::Handles {
    vectors::Handles {
        first: chan(v.at("first")),
        maybe: opt(v, "maybe", chan),
        more: v.at("more").list().iter().map(chan).collect(),
    }
}

pub fn pipes(v: &Json) -> Pipes {
    Pipes {
        source: pipe(v.at("source")),
        control: chan(v.at("control")),
        sinks: v.at("sinks").list().iter().map(pipe).collect(),
        spare: opt(v, "spare", pipe),
    }
}

pub fn evolving(v: &Json) -> Evolving {
    Evolving { a: v.at("a").int() as u8, b: opt(v, "b", string), c: opt(v, "c", |c| c.int() as u16) }
}

pub fn echo(v: &Json) -> Echo {
    Echo { text: string(v.at("text")) }
}

pub fn echo_reply(v: &Json) -> EchoReply {
    EchoReply { text: string(v.at("text")), color: color(v.at("color")) }
}
