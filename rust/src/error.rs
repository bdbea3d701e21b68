//! One error type with a stable code, as `IpcError` of src/errors.ts (docs/errors.md).

use std::fmt;

/// The codes of docs/errors.md; `as_str` is the name the other languages use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Backpressure,
    PeerClosed,
    Closed,
    TooLarge,
    TooManyHandles,
    HandleNotMovable,
    ResourceExhausted,
    InvalidArgument,
    InvalidMessage,
    RemoteError,
    Timeout,
    Aborted,
    ProtocolError,
    AuthFailed,
    ConnectionFailed,
}

const NAMES: [(ErrorCode, &str); 15] = [
    (ErrorCode::Backpressure, "BACKPRESSURE"),
    (ErrorCode::PeerClosed, "PEER_CLOSED"),
    (ErrorCode::Closed, "CLOSED"),
    (ErrorCode::TooLarge, "TOO_LARGE"),
    (ErrorCode::TooManyHandles, "TOO_MANY_HANDLES"),
    (ErrorCode::HandleNotMovable, "HANDLE_NOT_MOVABLE"),
    (ErrorCode::ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (ErrorCode::InvalidArgument, "INVALID_ARGUMENT"),
    (ErrorCode::InvalidMessage, "INVALID_MESSAGE"),
    (ErrorCode::RemoteError, "REMOTE_ERROR"),
    (ErrorCode::Timeout, "TIMEOUT"),
    (ErrorCode::Aborted, "ABORTED"),
    (ErrorCode::ProtocolError, "PROTOCOL_ERROR"),
    (ErrorCode::AuthFailed, "AUTH_FAILED"),
    (ErrorCode::ConnectionFailed, "CONNECTION_FAILED"),
];

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        NAMES.iter().find(|(c, _)| *c == self).map(|(_, n)| *n).unwrap_or("")
    }

    pub fn from_name(name: &str) -> Option<ErrorCode> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every fallible call of this crate returns as its error.
#[derive(Debug)]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = IpcError> = std::result::Result<T, E>;

impl IpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> IpcError {
        IpcError { code, message: message.into(), cause: None }
    }

    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> IpcError {
        self.cause = Some(Box::new(cause));
        self
    }

    /// A copy without the cause (a cause need not be `Clone`), for errors told to many waiters.
    pub fn shallow_clone(&self) -> IpcError {
        IpcError::new(self.code, self.message.clone())
    }
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for IpcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
    }
}
