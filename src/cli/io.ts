/** Where a command writes; tests pass collectors instead of the process streams. */
export interface CommandIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** A subcommand: takes its own arguments, returns the exit status. */
export type Command = (args: string[], io: CommandIo) => Promise<number>;

export class UsageError extends Error {
  override get name(): string {
    return 'UsageError';
  }
}
