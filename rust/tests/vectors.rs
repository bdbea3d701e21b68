//! Every shared vector of test/vectors/ (vectors.json and boundaries.json): valid ones encode to
//! their exact bytes and decode to their value, invalid ones are refused naming their path.

mod common;

use common::vectors::*;
use common::*;
use ftl_ipc::wire::{self, decode_message, decode_reply, encode_message, encode_reply, Control, MessageType};
use ftl_ipc::{ErrorCode, IpcError, Message};

/// Encodes `value`, checks the bytes, decodes them back and checks the value (by its Debug
/// text, which also compares NaN and handle placeholders).
fn round_trip<M: MessageType + std::fmt::Debug>(value: M, v: &Json) {
    let expected = format!("{:?}", value);
    let txid = v.get("txid").map(|t| t.int() as u32).unwrap_or(0);
    let name = v.at("name").str();
    let m = encode_message(value, txid).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(format!("{:#010x}", m.type_id), v.at("type").str(), "{name}: type id");
    assert_eq!(hex(&m.data), hex(&unhex(v.at("hex").str())), "{name}: bytes");
    let kinds: Vec<_> = m.handles.iter().map(kind_of).collect();
    let want: Vec<_> = handles_of(v).iter().map(kind_of).collect();
    assert_eq!(kinds, want, "{name}: handles");
    let (got_txid, decoded) = decode_message::<M>(Message { type_id: m.type_id, data: m.data, handles: handles_of(v) })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(got_txid, txid, "{name}: txid");
    assert_eq!(format!("{:?}", decoded), expected, "{name}: value");
}

fn check_reply(v: &Json) {
    let name = v.at("name").str();
    let txid = v.at("txid").int() as u32;
    let data = unhex(v.at("hex").str());
    let m = match v.get("error") {
        Some(e) => wire::encode_error_reply(<Echo as wire::CallType>::REPLY_ID, txid, e.at("code").str(), e.at("text").str()),
        None => encode_reply::<Echo>(txid, echo_reply(v.at("value"))).unwrap(),
    };
    assert_eq!(hex(&m.data), hex(&data), "{name}: bytes");
    assert_eq!(format!("{:#010x}", m.type_id), v.at("type").str(), "{name}: type id");
    let decoded = decode_reply::<Echo>(Message::new(m.type_id, data)).unwrap_or_else(|e| panic!("{name}: {e}"));
    match (decoded, v.get("error")) {
        (Ok(reply), None) => assert_eq!(reply, echo_reply(v.at("value")), "{name}"),
        (Err(e), Some(err)) => {
            assert_eq!(e.code, ErrorCode::RemoteError);
            assert!(e.message.contains(err.at("code").str()) && e.message.contains(err.at("text").str()), "{name}: {e}");
        }
        (other, _) => panic!("{name}: decoded as {other:?}"),
    }
}

fn check_valid(v: &Json) {
    if v.get("reply").is_some() {
        return check_reply(v);
    }
    let value = v.at("value");
    match v.at("message").str() {
        "vectors.all.empty" => round_trip(Empty {}, v),
        "vectors.all.scalars" => round_trip(scalars(value), v),
        "vectors.all.text" => round_trip(text(value), v),
        "vectors.all.containers" => round_trip(containers(value), v),
        "vectors.all.handles" => round_trip(handles(value), v),
        "vectors.all.pipes" => round_trip(pipes(value), v),
        "vectors.all.evolving" => round_trip(evolving(value), v),
        "vectors.all.echo" => round_trip(echo(value), v),
        other => panic!("no such message {other}"),
    }
}

/// The type id and whether it is a call, of a message of the schema by name.
fn id_of(name: &str) -> (u32, bool) {
    match name {
        "vectors.all.empty" => (Empty::ID, false),
        "vectors.all.scalars" => (Scalars::ID, false),
        "vectors.all.text" => (Text::ID, false),
        "vectors.all.containers" => (Containers::ID, false),
        "vectors.all.handles" => (vectors::Handles::ID, false),
        "vectors.all.pipes" => (Pipes::ID, false),
        "vectors.all.evolving" => (Evolving::ID, false),
        "vectors.all.echo" => (Echo::ID, true),
        other => panic!("no such message {other}"),
    }
}

fn decode_as(name: &str, m: Message) -> Result<String, IpcError> {
    Ok(match name {
        "vectors.all.empty" => format!("{:?}", decode_message::<Empty>(m)?),
        "vectors.all.scalars" => format!("{:?}", decode_message::<Scalars>(m)?),
        "vectors.all.text" => format!("{:?}", decode_message::<Text>(m)?),
        "vectors.all.containers" => format!("{:?}", decode_message::<Containers>(m)?),
        "vectors.all.handles" => format!("{:?}", decode_message::<vectors::Handles>(m)?),
        "vectors.all.pipes" => format!("{:?}", decode_message::<Pipes>(m)?),
        "vectors.all.evolving" => format!("{:?}", decode_message::<Evolving>(m)?),
        "vectors.all.echo" => format!("{:?}", decode_message::<Echo>(m)?),
        other => panic!("no such message {other}"),
    })
}

fn message_of(v: &Json) -> (String, Message) {
    let name = v.at("message").str().to_owned();
    let (id, _) = id_of(&name);
    (name, Message { type_id: id, data: unhex(v.at("hex").str()), handles: handles_of(v) })
}

fn assert_refused(v: &Json, result: Result<String, IpcError>) {
    let name = v.at("name").str();
    let path = v.at("path").str();
    match result {
        Ok(value) => panic!("{name}: decoded as {value}"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidMessage, "{name}: {e}");
            assert!(e.message.starts_with(&format!("{path}: ")), "{name}: {e} does not name {path}");
        }
    }
}

/// What a server does with a request: the control flags first, then the decoder.
fn serve_decode(name: &str, m: Message) -> Result<(Option<u32>, Option<u32>, Option<String>, String), IpcError> {
    let (_, is_call) = id_of(name);
    match wire::read_control(m, Some(is_call))? {
        Control::Cancel(txid) => Ok((Some(txid), None, None, String::new())),
        Control::Request { message, timeout_ms, traceparent } => {
            Ok((None, timeout_ms, traceparent, decode_as(name, message)?))
        }
    }
}

#[test]
fn every_shared_vector() {
    let mut counts = [0usize; 4];
    for file in ["test/vectors/vectors.json", "test/vectors/boundaries.json"] {
        let doc = read_json(file);
        for v in doc.at("valid").list() {
            check_valid(v);
            counts[0] += 1;
        }
        for v in doc.at("invalid").list() {
            let (name, m) = message_of(v);
            assert_refused(v, decode_as(&name, m));
            counts[1] += 1;
        }
        for v in doc.get("control").map(|c| c.list()).unwrap_or(&[]) {
            let vname = v.at("name").str();
            let (name, m) = message_of(v);
            assert_eq!(hex(&m.data[3..4]), format!("{:02x}", v.at("flags").int()), "{vname}: flags");
            let (cancel, timeout, trace, value) = serve_decode(&name, m).unwrap_or_else(|e| panic!("{vname}: {e}"));
            match v.at("kind").str() {
                "cancel" => {
                    assert_eq!(cancel, Some(v.at("txid").int() as u32), "{vname}");
                    assert_eq!(wire::encode_cancel(Echo::ID, v.at("txid").int() as u32).data, unhex(v.at("hex").str()));
                }
                _ => {
                    assert_eq!(cancel, None, "{vname}");
                    assert_eq!(timeout, v.get("timeout_ms").map(|t| t.int() as u32), "{vname}: deadline");
                    let want_trace = match v.get("traceparent") {
                        Some(Json::Str(s)) => Some(s.clone()),
                        _ => None,
                    };
                    assert_eq!(trace, want_trace, "{vname}: trace context");
                    assert_eq!(value, format!("{:?}", (v.at("txid").int() as u32, echo(v.at("value")))), "{vname}");
                    // And the client side writes exactly these bytes.
                    let mut sent = encode_message(echo(v.at("value")), v.at("txid").int() as u32).unwrap();
                    if let Some(t) = v.get("timeout_ms") {
                        wire::with_deadline(&mut sent, t.int() as u32);
                    }
                    if let Some(Json::Str(s)) = v.get("traceparent") {
                        wire::with_trace(&mut sent, &wire::TraceContext::parse(s).unwrap());
                    }
                    if want_trace.is_some() {
                        assert_eq!(hex(&sent.data), hex(&unhex(v.at("hex").str())), "{vname}: bytes");
                    }
                }
            }
            counts[2] += 1;
        }
        for v in doc.get("invalid_control").map(|c| c.list()).unwrap_or(&[]) {
            let (name, m) = message_of(v);
            assert_refused(v, serve_decode(&name, m).map(|r| format!("{:?}", r)));
            counts[3] += 1;
        }
    }
    // The vectors as they are today; a new one must be read here too.
    assert_eq!(counts, [27, 40, 7, 8], "valid, invalid, control, invalid control");
}

#[test]
fn a_relay_error_reply_fails_the_call_with_its_own_code() {
    for (code, expected) in [("PEER_CLOSED", ErrorCode::PeerClosed), ("NOT_A_CODE", ErrorCode::RemoteError)] {
        let m = wire::encode_error_reply(wire::RELAY_ERROR_TYPE, 9, code, "job#2 was killed");
        match decode_reply::<Echo>(m) {
            Ok(Err(e)) => {
                assert_eq!(e.code, expected, "{code}");
                assert!(e.message.ends_with(": job#2 was killed"), "{code}: {e}");
            }
            other => panic!("{code}: decoded as {other:?}"),
        }
    }
}
