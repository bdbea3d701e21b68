//! The Rust peer of test/rust/interop.test.ts and bench/rust.bench.ts: one scenario per run,
//! named by the first argument. It prints lines on stdout (`listening <address>`, what it
//! observed, `ok` at the end) and talks over real sockets.

#[path = "../../examples/polyglot/calc_service.rs"]
#[allow(dead_code)]
mod service;

use service::calc;

use ftl_ipc::rpc::{CallOptions, ServeOptions};
use ftl_ipc::{Address, Channel, ErrorCode, Limits, Listener, Message, Options, Result};
use std::io::Write;
use std::time::{Duration, Instant};

fn address(arg: &str) -> Address {
    if arg.contains('/') {
        Address::Unix(arg.into())
    } else {
        Address::Tcp(arg.into())
    }
}

fn options(secret: Option<&String>) -> Options {
    Options { secret: secret.map(|s| s.as_bytes().to_vec()), ..Options::default() }
}

fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", line);
    let _ = out.flush();
}

/// Calls every method of calc, then `concurrent` adds all in flight at once.
fn call_calc(client: &calc::CalcClient, concurrent: usize) -> Result<()> {
    let sum = client.add(calc::Add { a: 1 << 40, b: -2 })?.sum;
    say(format!("add {}", sum));
    let s = client.stats(calc::Stats { values: vec![1.0, 2.0, 3.0, 4.5] })?;
    say(format!("stats {} {}", s.count, s.mean));
    say(format!("shout {}", client.shout(calc::Shout { text: "hello from rust".into() })?.text));
    match client.stats(calc::Stats { values: vec![] }) {
        Err(e) if e.code == ErrorCode::RemoteError => say(format!("error {}", e.message)),
        other => say(format!("unexpected {:?}", other.map(|r| r.count))),
    }
    let started = Instant::now();
    let pending: Vec<_> = (0..concurrent as i64)
        .map(|i| client.rpc.start(calc::Add { a: i, b: 1 }, &CallOptions::default()))
        .collect::<Result<_>>()?;
    let mut right = 0;
    for (i, p) in pending.into_iter().enumerate() {
        if p.wait()?.sum == i as i64 + 1 {
            right += 1;
        }
    }
    say(format!("concurrent {} right in {} ms", right, started.elapsed().as_millis()));
    Ok(())
}

fn main() -> Result<()> {
    // spawnProcess passes the program's own path first (as it would a script's): skip it.
    let own = std::env::current_exe().ok();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .skip_while(|a| own.as_ref().map(|p| std::path::Path::new(a) == p.as_path()).unwrap_or(false))
        .collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        // serve <address> [secret]: calc for every client.
        "serve" => {
            let listener = Listener::bind(&address(&arg(1)), options(args.get(2)))?;
            say(format!("listening {}", listener.address));
            loop {
                let ch = listener.accept()?;
                std::thread::spawn(move || calc::serve_calc(ch, service::Calc, ServeOptions::default()));
            }
        }
        // client <address> <concurrent> [secret]
        "client" => {
            let ch = ftl_ipc::connect(&address(&arg(1)), options(args.get(3)))?;
            let client = calc::CalcClient::with_options(ch, CallOptions { timeout: Some(Duration::from_secs(30)), traceparent: None });
            call_calc(&client, arg(2).parse().unwrap_or(0))?;
            drop(client);
            ftl_ipc::flush_sockets(Duration::from_secs(5))?;
            say("ok");
        }
        // hold <address> <capacity>: accept one connection with that root capacity, read nothing.
        "hold" => {
            let limits = Limits { capacity: arg(2).parse().unwrap_or(8), ..Limits::default() };
            let listener = Listener::bind(&address(&arg(1)), Options { limits, ..Options::default() })?;
            say(format!("listening {}", listener.address));
            let ch = listener.accept()?;
            say("accepted");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).ok();
            // Told to read: take everything, then report.
            let mut n = 0;
            while let Ok(m) = ch.recv(Some(Duration::from_millis(500))) {
                let _ = m;
                n += 1;
            }
            say(format!("read {}", n));
        }
        // hang <address>: connect, call once, then wait to be killed.
        "hang" => {
            let ch = ftl_ipc::connect(&address(&arg(1)), Options::default())?;
            let client = calc::CalcClient::new(ch);
            say(format!("add {}", client.add(calc::Add { a: 2, b: 3 })?.sum));
            std::thread::sleep(Duration::from_secs(3600));
        }
        // relay (a child of spawnProcess with channels a and b): passes every message, with
        // its handles, from each to the other until both close.
        "relay" => {
            let mut chans = ftl_ipc::parent_channels(Options::default())?;
            let a = std::sync::Arc::new(chans.remove("a").expect("channel a"));
            let b = std::sync::Arc::new(chans.remove("b").expect("channel b"));
            let pass = |from: std::sync::Arc<Channel>, to: std::sync::Arc<Channel>| {
                std::thread::spawn(move || {
                    while let Ok(m) = from.recv(None) {
                        if to.send_wait(m, Some(Duration::from_secs(10))).is_err() {
                            break;
                        }
                    }
                    to.close();
                })
            };
            let (x, y) = (pass(a.clone(), b.clone()), pass(b, a));
            let _ = x.join();
            let _ = y.join();
            ftl_ipc::flush_sockets(Duration::from_secs(5))?;
        }
        // blast <address> <count> <size>: one-way messages of `size` bytes as fast as credits allow.
        "blast" => {
            let ch = ftl_ipc::connect(&address(&arg(1)), Options::default())?;
            let (count, size): (usize, usize) = (arg(2).parse().unwrap_or(0), arg(3).parse().unwrap_or(16));
            let started = Instant::now();
            for _ in 0..count {
                ch.send_wait(Message::new(1, vec![0u8; size]), None)?;
            }
            ftl_ipc::flush_sockets(Duration::from_secs(30))?;
            say(format!("sent {} in {} us", count, started.elapsed().as_micros()));
        }
        other => panic!("unknown scenario {:?}", other),
    }
    Ok(())
}
