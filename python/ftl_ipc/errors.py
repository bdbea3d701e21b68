"""The one exception the package raises on purpose, with the stable codes of docs/errors.md."""

from __future__ import annotations

from typing import Final

#: Every code, the same list and order as IPC_ERROR_CODES in src/errors.ts.
IPC_ERROR_CODES: Final = (
    "BACKPRESSURE",
    "PEER_CLOSED",
    "CLOSED",
    "TOO_LARGE",
    "TOO_MANY_HANDLES",
    "HANDLE_NOT_MOVABLE",
    "RESOURCE_EXHAUSTED",
    "INVALID_ARGUMENT",
    "INVALID_MESSAGE",
    "REMOTE_ERROR",
    "TIMEOUT",
    "ABORTED",
    "PROTOCOL_ERROR",
    "AUTH_FAILED",
    "CONNECTION_FAILED",
)


class IpcError(Exception):
    """Match on `code`, never on the message."""

    def __init__(self, code: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
