/**
 * Every error the library throws on purpose is an {@link IpcError}; callers match on `code`,
 * which is stable across versions. docs/errors.md says when each code happens and what to do.
 */
export type IpcErrorCode =
  | 'BACKPRESSURE'
  | 'PEER_CLOSED'
  | 'CLOSED'
  | 'TOO_LARGE'
  | 'TOO_MANY_HANDLES'
  | 'HANDLE_NOT_MOVABLE'
  | 'INVALID_MESSAGE'
  | 'INVALID_ARGUMENT'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'REMOTE_ERROR'
  | 'PROTOCOL_ERROR'
  | 'AUTH_FAILED'
  | 'CONNECTION_FAILED';

export class IpcError extends Error {
  readonly code: IpcErrorCode;

  constructor(code: IpcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return 'IpcError';
  }
}

/** True when `err` is an IpcError, optionally with the given code. */
export function isIpcError(err: unknown, code?: IpcErrorCode): err is IpcError {
  return err instanceof IpcError && (code === undefined || err.code === code);
}
