//! Placeholder until the socket transport lands.

/// A channel end.
#[derive(Debug)]
pub struct Channel(());

impl Channel {
    /// An end that is closed already: what a test or a default value holds.
    pub fn closed() -> Channel {
        Channel(())
    }
}

/// A data pipe end that arrived in a message: it can only be closed.
#[derive(Debug)]
pub struct PipeEnd(());

impl PipeEnd {
    pub fn closed() -> PipeEnd {
        PipeEnd(())
    }
}
