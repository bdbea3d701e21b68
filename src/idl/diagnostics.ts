import type { Diagnostic as SourceDiagnostic } from '../source-file.js';

export { formatDiagnostic, SourceFile } from '../source-file.js';

/** A problem found in an IDL file, with enough position to show the reader where. */
export type Diagnostic = SourceDiagnostic<DiagnosticCode>;

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
