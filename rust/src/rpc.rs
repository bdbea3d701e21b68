//! RPC over a channel (placeholder signatures until the transport lands).

use crate::error::{ErrorCode, IpcError, Result};
use crate::transport::Channel;
use crate::wire::{CallType, Message, MessageType};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    pub timeout: Option<Duration>,
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ServeOptions {}

pub struct CallContext {}

pub struct RpcClient {
    options: CallOptions,
    _channel: Channel,
}

impl RpcClient {
    pub fn new(channel: Channel, options: CallOptions) -> RpcClient {
        RpcClient { options, _channel: channel }
    }
    pub fn options(&self) -> &CallOptions {
        &self.options
    }
    pub fn call<C: CallType>(&self, _value: C, _options: &CallOptions) -> Result<C::Reply> {
        Err(IpcError::new(ErrorCode::Closed, "not yet"))
    }
    pub fn push<M: MessageType>(&self, _value: M) -> Result<()> {
        Err(IpcError::new(ErrorCode::Closed, "not yet"))
    }
    pub fn push_wait<M: MessageType>(&self, _value: M, _timeout: Option<Duration>) -> Result<()> {
        Err(IpcError::new(ErrorCode::Closed, "not yet"))
    }
    pub fn recv_event(&self, _timeout: Option<Duration>) -> Result<Message> {
        Err(IpcError::new(ErrorCode::Closed, "not yet"))
    }
}

pub struct Job<H> {
    _h: PhantomData<H>,
}

impl<H> Job<H> {
    pub fn call<C: CallType>(_txid: u32, _f: impl FnOnce(&H, &CallContext) -> Result<C::Reply> + Send + 'static) -> Job<H> {
        Job { _h: PhantomData }
    }
    pub fn push(_f: impl FnOnce(&H, &CallContext) -> Result<()> + Send + 'static) -> Job<H> {
        Job { _h: PhantomData }
    }
}

pub fn unexpected(m: &Message) -> IpcError {
    IpcError::new(ErrorCode::InvalidMessage, format!("(message): type id {} is not a message this side receives", m.type_id))
}

pub fn serve<H>(_c: Channel, _h: Arc<H>, _o: ServeOptions, _is_call: fn(u32) -> Option<bool>, _decode: fn(Message) -> Result<Job<H>>) -> Result<()> {
    Err(IpcError::new(ErrorCode::Closed, "not yet"))
}
