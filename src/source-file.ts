/** A problem in a source file (an IDL, a system spec), placed so a person and an editor find it. */
export interface Diagnostic<Code extends string = string> {
  readonly code: Code;
  readonly message: string;
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units like editors count. */
  readonly col: number;
  /** The offending source lines with a caret marker underneath. */
  readonly frame: string;
}

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

  diagnostic<Code extends string>(
    code: Code,
    message: string,
    start: number,
    end: number,
  ): Diagnostic<Code> {
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
