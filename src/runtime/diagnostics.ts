/** A problem in a system spec, placed so an editor (and a person) can jump to it. */
export interface SpecDiagnostic {
  readonly code: SpecDiagnosticCode;
  readonly message: string;
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units like editors count. */
  readonly col: number;
  /** The line before, the offending line with a caret underline, and the line after. */
  readonly frame: string;
}

export type SpecDiagnosticCode =
  | 'SPEC_SYNTAX'
  | 'SPEC_UNKNOWN_KEY'
  | 'SPEC_MISSING_KEY'
  | 'SPEC_BAD_VALUE'
  | 'SPEC_DUPLICATE_NAME'
  | 'SPEC_UNKNOWN_PROTOCOL'
  | 'SPEC_AMBIGUOUS_PROVIDER'
  | 'SPEC_MODULE_NOT_FOUND';

/** Positions inside one source text; line starts are computed once for all its diagnostics. */
export class SpecSource {
  readonly file: string;
  readonly #lines: string[];
  readonly #starts: number[] = [0];

  constructor(file: string, text: string) {
    this.file = file;
    this.#lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
    for (const line of this.#lines) this.#starts.push(this.#starts.at(-1)! + line.length + 1);
  }

  at(code: SpecDiagnosticCode, message: string, range: readonly [number, number]): SpecDiagnostic {
    const [start, end] = range;
    let line = 0;
    while (line + 1 < this.#lines.length && this.#starts[line + 1]! <= start) line++;
    const col = start - this.#starts[line]! + 1;
    const text = this.#lines[line] ?? '';
    // At least one caret, never past the end of the line: multi-line nodes underline their start.
    const carets = Math.max(1, Math.min(end - start, text.length - col + 1));
    const width = String(Math.min(line + 2, this.#lines.length)).length;
    const rows: string[] = [];
    for (let l = Math.max(0, line - 1); l <= Math.min(this.#lines.length - 1, line + 1); l++) {
      rows.push(
        `${l === line ? '>' : ' '} ${String(l + 1).padStart(width)} | ${this.#lines[l]}`.trimEnd(),
      );
      if (l === line)
        rows.push(`  ${' '.repeat(width)} | ${' '.repeat(col - 1)}${'^'.repeat(carets)}`);
    }
    return { code, message, file: this.file, line: line + 1, col, frame: rows.join('\n') };
  }
}

/** `file:line:col: error[CODE]: message` and the code frame, as compilers print them. */
export function formatSpecDiagnostic(d: SpecDiagnostic): string {
  return `${d.file}:${d.line}:${d.col}: error[${d.code}]: ${d.message}\n${d.frame}\n`;
}
