/** A problem found in an IDL file, with enough position to show the reader where. */
export interface Diagnostic {
  readonly code: DiagnosticCode;
  readonly message: string;
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units like editors count. */
  readonly col: number;
  /** The offending source lines with a caret marker underneath. */
  readonly frame: string;
}

export type DiagnosticCode =
  | 'IDL_SYNTAX'
  | 'IDL_UNKNOWN_KEY'
  | 'IDL_MISSING_KEY'
  | 'IDL_BAD_VALUE'
  | 'IDL_BAD_NAME'
  | 'IDL_DUPLICATE_NAME'
  | 'IDL_UNKNOWN_TYPE'
  | 'IDL_MISSING_CAPACITY'
  | 'IDL_UNKNOWN_PROTOCOL'
  | 'IDL_ID_COLLISION'
  | 'IDL_RECURSIVE_STRUCT'
  | 'IDL_IMPORT'
  | 'IDL_INCOMPATIBLE';

/** Source text of one file, with line starts computed once for all of its diagnostics. */
export class SourceFile {
  readonly path: string;
  readonly text: string;
  readonly #lineStarts: number[] = [0];

  constructor(path: string, text: string) {
    this.path = path;
    this.text = text;
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) this.#lineStarts.push(i + 1);
    }
  }

  diagnostic(code: DiagnosticCode, message: string, start: number, end: number): Diagnostic {
    const line = this.#lineOf(start);
    const col = start - this.#lineStarts[line]! + 1;
    return {
      code,
      message,
      file: this.path,
      line: line + 1,
      col,
      frame: this.#frame(line, col, start, end),
    };
  }

  #lineOf(offset: number): number {
    let lo = 0;
    let hi = this.#lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #lineText(line: number): string {
    const start = this.#lineStarts[line]!;
    const next = this.#lineStarts[line + 1];
    return this.text.slice(start, next === undefined ? undefined : next - 1).replace(/\r$/, '');
  }

  #frame(line: number, col: number, start: number, end: number): string {
    // A final newline ends the last line; it does not start an empty one worth showing.
    const lines = this.#lineStarts.length - (this.text.endsWith('\n') ? 1 : 0);
    const first = Math.max(0, line - 1);
    const last = Math.max(line, Math.min(lines - 1, line + 1));
    const width = String(last + 1).length;
    const text = this.#lineText(line);
    // Underline at least one column and never past the end of the line.
    const length = Math.max(1, Math.min(end - start, text.length - col + 1));
    const out: string[] = [];
    for (let l = first; l <= last; l++) {
      const marker = l === line ? '>' : ' ';
      out.push(`${marker} ${String(l + 1).padStart(width)} | ${this.#lineText(l)}`.trimEnd());
      if (l === line)
        out.push(`  ${' '.repeat(width)} | ${' '.repeat(col - 1)}${'^'.repeat(length)}`);
    }
    return out.join('\n');
  }
}

/** `file:line:col: error[CODE]: message` followed by the code frame, as compilers print it. */
export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: error[${d.code}]: ${d.message}\n${d.frame}\n`;
}

/** Thrown by the loader when an IDL has problems; carries every one found, not only the first. */
export class IdlError extends Error {
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[]) {
    const first = diagnostics[0];
    const where =
      first === undefined
        ? ''
        : ` (first: ${first.file}:${first.line}:${first.col} ${first.message})`;
    super(`IDL has ${diagnostics.length} problem(s)${where}`);
    this.diagnostics = diagnostics;
  }

  override get name(): string {
    return 'IdlError';
  }
}
