//! What the vector and fuzz tests share: the generated modules of test/vectors, a small JSON
//! reader (std only) and values built from the vectors' JSON.
#![allow(dead_code)]

#[path = "../generated/shared.rs"]
pub mod shared;
#[path = "../generated/vectors.rs"]
pub mod vectors;

use ftl_ipc::{Channel, Handle, PipeEnd};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Kept as written, so 64-bit integers stay exact.
    Number(String),
    Str(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub fn parse(text: &str) -> Json {
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing characters in JSON");
        v
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.get(key),
            _ => None,
        }
    }

    pub fn at(&self, key: &str) -> &Json {
        self.get(key).unwrap_or_else(|| panic!("no key {key} in {self:?}"))
    }

    pub fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }

    pub fn list(&self) -> &[Json] {
        match self {
            Json::Array(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }

    /// An integer, from a number or (64-bit ones) a decimal string.
    pub fn int(&self) -> i128 {
        match self {
            Json::Number(n) | Json::Str(n) => n.parse().unwrap_or_else(|_| panic!("not an integer: {n}")),
            _ => panic!("not an integer: {self:?}"),
        }
    }

    pub fn float(&self) -> f64 {
        match self {
            Json::Number(n) => n.parse().unwrap(),
            Json::Str(s) if s == "NaN" => f64::NAN,
            Json::Str(s) if s == "Infinity" => f64::INFINITY,
            Json::Str(s) if s == "-Infinity" => f64::NEG_INFINITY,
            _ => panic!("not a float: {self:?}"),
        }
    }

    pub fn boolean(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            _ => panic!("not a bool: {self:?}"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(self.s[self.i], c, "expected {} at {}", c as char, self.i);
        self.i += 1;
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Object(m);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.eat(b':');
                    m.insert(k, self.value());
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b'}' {
                        return Json::Object(m);
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Array(a);
                }
                loop {
                    a.push(self.value());
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b']' {
                        return Json::Array(a);
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => {
                self.i += 4;
                Json::Bool(true)
            }
            b'f' => {
                self.i += 5;
                Json::Bool(false)
            }
            b'n' => {
                self.i += 4;
                Json::Null
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                Json::Number(String::from_utf8(self.s[start..self.i].to_vec()).unwrap())
            }
        }
    }

    fn hex4(&mut self) -> u32 {
        let h = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
        self.i += 4;
        u32::from_str_radix(h, 16).unwrap()
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return out,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let mut cp = self.hex4();
                            if (0xd800..0xdc00).contains(&cp) {
                                self.i += 2; // \u
                                let lo = self.hex4();
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                            }
                            out.push(char::from_u32(cp).unwrap());
                        }
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy one UTF-8 sequence whole.
                    let start = self.i - 1;
                    while self.i < self.s.len() && (self.s[self.i] & 0xc0) == 0x80 {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap());
                }
            }
        }
    }
}

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
