//! The Rust side of `ftl-ipc run`'s startup protocol (src/runtime/host.ts, python/ftl_ipc/host.py):
//! a `rust:` service is a built binary whose `main` calls `run`. The supervisor hands over the
//! startup channel (FTL_IPC_FD) and the boot information (FTL_IPC_BOOT); on the startup channel
//! come the dependencies' channels, each new client's channel and stop; the service reports its
//! channels' statistics every `statsIntervalMs`.

use crate::error::{ErrorCode, IpcError, Result};
use crate::json::Json;
use crate::transport::{parent_channels, stats_of, Channel, Options, Stats};
use crate::wire::{Handle, Message};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const DEPENDENCY: u32 = 0x4654_4c01;
const NEW_CLIENT: u32 = 0x4654_4c02;
const STOP: u32 = 0x4654_4c03;
const STATS: u32 = 0x4654_4c04;

#[derive(Default)]
struct Shared {
    dependencies: HashMap<String, Option<Channel>>,
    clients: VecDeque<Channel>,
    /// Every channel handed to the service, by report name, for the statistics.
    reported: Vec<(String, (u64, u32))>,
}

/// What a service gets: its name and config, its dependencies' channels, its clients, and
/// `stopping()`, true at shutdown (stop taking work and return from main).
pub struct Env {
    pub name: String,
    pub config: Json,
    shared: Mutex<Shared>,
    changed: Condvar,
    stopping: AtomicBool,
}

impl Env {
    /// Takes the channel to dependency `name` (once).
    pub fn channel(&self, name: &str) -> Result<Channel> {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        match s.dependencies.get_mut(name) {
            Some(slot) => slot.take().ok_or_else(|| IpcError::new(ErrorCode::Closed, format!("the channel to {} was taken already", name))),
            None => {
                let names: Vec<_> = s.dependencies.keys().cloned().collect();
                Err(IpcError::new(ErrorCode::InvalidArgument, format!("{:?} is not a dependency of {}; it has {:?}", name, self.name, names)))
            }
        }
    }

    /// For servers: the next connecting client's channel; None at shutdown.
    pub fn next_client(&self) -> Option<Channel> {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ch) = s.clients.pop_front() {
                return Some(ch);
            }
            if self.stopping() {
                return None;
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }

    fn ready(&self) -> bool {
        let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.dependencies.values().all(|c| c.is_some())
    }

    fn report(&self) -> String {
        let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let items: Vec<String> = s
            .reported
            .iter()
            .filter_map(|(name, key)| stats_of(*key).map(|st| format!("{{\"name\":{},\"stats\":{}}}", quote(name), stats_json(&st))))
            .collect();
        format!("[{}]", items.join(","))
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn stats_json(s: &Stats) -> String {
    format!(
        "{{\"sent\":{},\"received\":{},\"dropped\":{},\"backpressured\":{},\"discarded\":{},\"highWaterMark\":{},\"sentBytes\":{},\"receivedBytes\":{}}}",
        s.sent, s.received, s.dropped, s.backpressured, s.discarded, s.high_water_mark, s.sent_bytes, s.received_bytes
    )
}

fn boot_error(what: &str) -> IpcError {
    IpcError::new(ErrorCode::InvalidArgument, format!("FTL_IPC_BOOT: {} (this program is started by ftl-ipc run)", what))
}

/// Runs `main` as a service of `ftl-ipc run` once every dependency's channel arrived, and gives
/// the exit code: 0 when it returns Ok, 1 when it fails (its error on stderr, which the
/// supervisor prefixes with the service's name). Call it as
/// `std::process::exit(ftl_ipc::host::run(|env| ...))`.
pub fn run(main: impl FnOnce(&Env) -> Result<()>) -> i32 {
    match host(main) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}", e);
            1
        }
    }
}

fn host(main: impl FnOnce(&Env) -> Result<()>) -> Result<()> {
    let boot = std::env::var("FTL_IPC_BOOT").map_err(|_| boot_error("not set"))?;
    let boot = Json::parse(&boot);
    let name = boot.get("service").ok_or_else(|| boot_error("no service"))?.str().to_owned();
    let deps: Vec<String> = boot.get("dependencies").map(|d| d.list().iter().map(|n| n.str().to_owned()).collect()).unwrap_or_default();
    let ms = |key: &str| boot.get(key).map(|v| v.int() as u64).unwrap_or(1000);
    let (grace, interval) = (Duration::from_millis(ms("graceMs")), Duration::from_millis(ms("statsIntervalMs").max(10)));
    let mut channels = parent_channels(Options::default())?;
    let startup = Arc::new(channels.remove("startup").ok_or_else(|| boot_error("no startup channel"))?);
    let env = Arc::new(Env {
        name,
        config: boot.get("config").cloned().unwrap_or(Json::Null),
        shared: Mutex::new(Shared { dependencies: deps.into_iter().map(|d| (d, None)).collect(), ..Shared::default() }),
        changed: Condvar::new(),
        stopping: AtomicBool::new(false),
    });
    let (listen_env, listen_startup) = (env.clone(), startup.clone());
    std::thread::spawn(move || {
        while let Ok(m) = listen_startup.recv(None) {
            on_startup(&listen_env, m);
        }
        // The supervisor is gone: this service must not outlive it.
        listen_env.stop();
        std::thread::sleep(grace);
        std::process::exit(1);
    });
    let (stats_env, stats_startup) = (env.clone(), startup.clone());
    std::thread::spawn(move || loop {
        std::thread::sleep(interval);
        // Dropped when the supervisor's queue is full: the next report replaces it.
        let _ = stats_startup.send(Message::new(STATS, stats_env.report().into_bytes()));
    });
    {
        let mut s = env.shared.lock().unwrap_or_else(|p| p.into_inner());
        while !s.dependencies.values().all(|c| c.is_some()) && !env.stopping() {
            s = env.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
    let result = if env.ready() { main(&env) } else { Ok(()) };
    startup.close();
    let _ = crate::transport::flush_sockets(Duration::from_secs(1));
    result
}

fn on_startup(env: &Env, m: Message) {
    if m.type_id == STOP {
        return env.stop();
    }
    let name = String::from_utf8_lossy(&m.data).into_owned();
    let ch = match m.handles.into_iter().next() {
        Some(Handle::Channel(ch)) => ch,
        _ => return,
    };
    let mut s = env.shared.lock().unwrap_or_else(|p| p.into_inner());
    match m.type_id {
        DEPENDENCY if s.dependencies.contains_key(&name) => {
            s.reported.push((format!("dep:{}", name), ch.key()));
            s.dependencies.insert(name, Some(ch));
        }
        NEW_CLIENT => {
            s.reported.push((format!("client:{}", name), ch.key()));
            s.clients.push_back(ch);
        }
        _ => {}
    }
    env.changed.notify_all();
}
