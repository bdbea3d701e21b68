//! ftl-ipc for Rust: the wire format, the socket transport and RPC of docs/wire-format.md and
//! docs/socket-transport.md, on the standard library alone (docs/rust.md).

pub mod error;
pub mod host;
pub mod json;
pub mod rpc;
mod sha256;
pub mod transport;
pub mod wire;

pub use error::{ErrorCode, IpcError, Result};
pub use transport::{connect, flush_sockets, parent_channels, Address, Channel, Limits, Listener, Options, PipeEnd, Stats};
pub use wire::{Codec, Handle, Message};
