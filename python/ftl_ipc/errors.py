"""The one exception the package raises on purpose, with the stable codes of docs/errors.md."""

from __future__ import annotations

import math
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


#: The longest timeout a call or wait takes, in seconds: TypeScript's limit (2**31 - 1 ms), so a
#: deadline sent on the wire means the same on both sides.
MAX_TIMEOUT_S: Final = 2_147_483.647


def check_timeout(where: str, timeout: object) -> float | None:
    """Returns `timeout` (seconds, or None for no limit), or raises INVALID_ARGUMENT naming it."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or math.isnan(timeout)
        or not 0 <= timeout <= MAX_TIMEOUT_S
    ):
        raise IpcError(
            "INVALID_ARGUMENT",
            f"{where}: timeout must be None or a number of seconds from 0 to {MAX_TIMEOUT_S}, got {timeout!r}",
        )
    return float(timeout)
