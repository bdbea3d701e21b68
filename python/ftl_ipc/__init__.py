"""ftl_ipc: the Python side of ftl-ipc (docs/python.md): the wire codec, the socket transport,
channels with backpressure and typed RPC from the same IDL as the TypeScript side."""

from .errors import IPC_ERROR_CODES, IpcError

__all__ = ["IPC_ERROR_CODES", "IpcError"]
