export { type CompatProblem, checkCompatibility } from './compat.js';
export {
  type Diagnostic,
  type DiagnosticCode,
  formatDiagnostic,
  IdlError,
  SourceFile,
} from './diagnostics.js';
export { fnv1a32, messagesByName } from './ids.js';
export { findIdlFiles, type LoadResult, loadIdl, loadIdlOrThrow, type ReadFile } from './load.js';
export type * from './model.js';
