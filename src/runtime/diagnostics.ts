import type { Diagnostic } from '../source-file.js';

export { formatDiagnostic as formatSpecDiagnostic, SourceFile } from '../source-file.js';

/** A problem in a system spec, placed so an editor (and a person) can jump to it. */
export type SpecDiagnostic = Diagnostic<SpecDiagnosticCode>;

export type SpecDiagnosticCode =
  | 'SPEC_SYNTAX'
  | 'SPEC_UNKNOWN_KEY'
  | 'SPEC_MISSING_KEY'
  | 'SPEC_BAD_VALUE'
  | 'SPEC_DUPLICATE_NAME'
  | 'SPEC_UNKNOWN_PROTOCOL'
  | 'SPEC_AMBIGUOUS_PROVIDER'
  | 'SPEC_MODULE_NOT_FOUND';
