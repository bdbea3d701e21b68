import type { ServiceStatus } from './supervisor.js';

/** The status table as text: one row per service, then one per channel a service reported. */
export function renderStatus(services: readonly ServiceStatus[]): string {
  const rows: string[][] = [['SERVICE', 'ISOLATION', 'STATE', 'ID', 'RESTARTS']];
  for (const s of services) {
    rows.push([s.name, s.isolation, s.state, s.id ?? '-', String(s.restarts)]);
  }
  const channels: string[][] = [
    ['SERVICE', 'CHANNEL', 'QUEUED', 'HIGH-WATER', 'DROPPED', 'BACKPRESSURED'],
  ];
  for (const s of services) {
    for (const c of s.channels) {
      const { queuedMessages, highWaterMark, dropped, backpressured } = c.stats;
      channels.push([
        s.name,
        c.name,
        ...[queuedMessages, highWaterMark, dropped, backpressured].map(String),
      ]);
    }
  }
  return `${table(rows)}\n${channels.length > 1 ? `${table(channels)}\n` : ''}`;
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * Keeps the status table at the bottom of a terminal: each log line first erases the table, then
 * the table is drawn again below it.
 */
export class LiveStatus {
  readonly #write: (text: string) => void;
  #lines = 0;

  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  /** Writes `text` (whole lines) above the table. */
  log(text: string, write: (text: string) => void = this.#write): void {
    this.#erase();
    write(text);
  }

  draw(services: readonly ServiceStatus[]): void {
    this.#erase();
    const text = renderStatus(services);
    this.#lines = text.split('\n').length - 1;
    this.#write(text);
  }

  #erase(): void {
    // Cursor up over the table, then clear to the end of the screen.
    if (this.#lines > 0) this.#write(`\x1b[${this.#lines}A\x1b[J`);
    this.#lines = 0;
  }
}
