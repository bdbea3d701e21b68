/** Runs systems in tests and watches their output. */
import { fileURLToPath } from 'node:url';
import { parseSystemSpec, System, type SystemEvent } from '../../src/index.js';

export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const fixture = (name: string) =>
  fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));

/** A running system and everything it printed, as `[service] line`. */
export class Run {
  readonly system: System;
  readonly lines: string[] = [];
  readonly events: SystemEvent[] = [];
  /** When each of `events` arrived, by `performance.now()`. */
  readonly eventTimes: number[] = [];
  readonly #watchers = new Set<() => void>();

  /** Starts the spec `text`; module paths are resolved as if it were at `file`. */
  constructor(text: string, file = `${root}test.yaml`) {
    const { spec, diagnostics } = parseSystemSpec(text, file);
    if (spec === undefined) throw new Error(diagnostics.map((d) => d.message).join('\n'));
    this.system = new System(spec, {
      statsIntervalMs: 100,
      onLog: (service, _, line) => this.#push(`[${service}] ${line}`),
      onEvent: (event) => {
        this.events.push(event);
        this.eventTimes.push(performance.now());
        this.#push(`[run] ${event.service} ${event.kind}`);
      },
    });
    this.system.start();
  }

  /** The first line (past or future) that matches, within `timeoutMs`. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.lines) {
        const match = pattern.exec(line);
        if (match !== null) return match;
      }
      if (Date.now() > deadline) {
        throw new Error(`no line matched ${pattern} in ${timeoutMs} ms:\n${this.lines.join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#watchers.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #push(line: string): void {
    this.lines.push(line);
    for (const wake of this.#watchers) wake();
    this.#watchers.clear();
  }
}
