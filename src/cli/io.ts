/** Where a command writes; tests pass collectors instead of the process streams. */
export interface CommandIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** A subcommand: takes its own arguments, returns the exit status. */
export type Command = (args: string[], io: CommandIo) => Promise<number>;

/** The caller's mistake: exit status 2, with the command's usage unless `showUsage` is false. */
export class UsageError extends Error {
  readonly showUsage: boolean;

  constructor(message: string, showUsage = true) {
    super(message);
    this.showUsage = showUsage;
  }

  override get name(): string {
    return 'UsageError';
  }
}

/** Why a file named on the command line cannot be read, in one line: "x.yaml does not exist". */
export function unreadable(path: string, error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  if (code === 'ENOENT') return `${path} does not exist`;
  if (code === 'EACCES') return `${path} cannot be read: permission denied`;
  return `${path} cannot be read: ${message}`;
}
