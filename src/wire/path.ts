/**
 * Where in a value the codec is, kept as a stack of field names and array indexes so that the
 * common case (no error) costs a push and a pop, and the readable path is built only to report.
 */
export class FieldPath {
  readonly #parts: (string | number)[] = [];

  get depth(): number {
    return this.#parts.length;
  }

  push(part: string | number): void {
    this.#parts.push(part);
  }

  pop(): void {
    this.#parts.pop();
  }

  clear(): void {
    this.#parts.length = 0;
  }

  /** `a.b[3].c` for the parts a, b, 3 and then `field` c. */
  format(field: string | number | undefined): string {
    let out = '';
    for (const part of field === undefined ? this.#parts : [...this.#parts, field]) {
      if (typeof part === 'number') out += `[${part}]`;
      else out += out === '' ? part : `.${part}`;
    }
    return out === '' ? '(message)' : out;
  }
}
