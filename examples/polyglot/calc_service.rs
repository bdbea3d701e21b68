//! The Rust calc service of examples/polyglot, generated from calc.yaml like the TypeScript
//! client and the Python service (docs/rust.md). As a `rust:` service of `ftl-ipc run`
//! (system-rust.yaml) it serves every client the supervisor connects; started by `spawnProcess`
//! it serves the channels its parent hands over (FTL_IPC_FD); run by hand, `calc_service
//! <socket path or host:port>` listens and serves every client on a thread of its own.

#[path = "calc.rs"]
pub mod calc;

use ftl_ipc::rpc::{CallContext, ServeOptions};
use ftl_ipc::{Address, ErrorCode, IpcError, Listener, Options, Result};

pub struct Calc;

impl calc::CalcHandlers for Calc {
    fn add(&self, value: calc::Add, _: &CallContext) -> Result<calc::AddReply> {
        let sum = value.a.checked_add(value.b).ok_or_else(|| IpcError::new(ErrorCode::InvalidArgument, "the sum overflows int64"))?;
        Ok(calc::AddReply { sum })
    }

    fn stats(&self, value: calc::Stats, _: &CallContext) -> Result<calc::StatsReply> {
        if value.values.is_empty() {
            return Err(IpcError::new(ErrorCode::InvalidArgument, "stats of no values"));
        }
        let mean = value.values.iter().sum::<f64>() / value.values.len() as f64;
        Ok(calc::StatsReply { count: value.values.len() as u32, mean })
    }

    fn shout(&self, value: calc::Shout, _: &CallContext) -> Result<calc::ShoutReply> {
        Ok(calc::ShoutReply { text: format!("{}!", value.text.to_uppercase()) })
    }
}

fn main() -> Result<()> {
    if std::env::var_os("FTL_IPC_BOOT").is_some() {
        std::process::exit(ftl_ipc::host::run(|env| {
            let mut sessions = Vec::new();
            while let Some(client) = env.next_client() {
                sessions.push(std::thread::spawn(move || calc::serve_calc(client, Calc, ServeOptions::default())));
            }
            for s in sessions {
                let _ = s.join();
            }
            Ok(())
        }));
    }
    if std::env::var_os("FTL_IPC_FD").is_some() {
        let threads: Vec<_> = ftl_ipc::parent_channels(Options::default())?
            .into_values()
            .map(|ch| std::thread::spawn(move || calc::serve_calc(ch, Calc, ServeOptions::default())))
            .collect();
        for t in threads {
            let _ = t.join();
        }
        return ftl_ipc::flush_sockets(std::time::Duration::from_secs(5));
    }
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let address = if arg.contains('/') { Address::Unix(arg.into()) } else { Address::Tcp(arg) };
    let listener = Listener::bind(&address, Options::default())?;
    println!("listening on {}", listener.address);
    loop {
        let ch = listener.accept()?;
        std::thread::spawn(move || calc::serve_calc(ch, Calc, ServeOptions::default()));
    }
}
