/**
 * Every error the library throws on purpose is an {@link IpcError}; callers match on `code`,
 * which is stable across versions. docs/errors.md says when each code happens and what to do.
 */
/** Every code, in the order docs/errors.md explains them. */
export const IPC_ERROR_CODES = [
  'BACKPRESSURE',
  'PEER_CLOSED',
  'CLOSED',
  'TOO_LARGE',
  'TOO_MANY_HANDLES',
  'HANDLE_NOT_MOVABLE',
  'RESOURCE_EXHAUSTED',
  'INVALID_ARGUMENT',
  'INVALID_MESSAGE',
  'REMOTE_ERROR',
  'TIMEOUT',
  'ABORTED',
  'PROTOCOL_ERROR',
  'AUTH_FAILED',
  'CONNECTION_FAILED',
] as const;

export type IpcErrorCode = (typeof IPC_ERROR_CODES)[number];

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
