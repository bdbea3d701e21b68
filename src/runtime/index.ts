export {
  formatSpecDiagnostic,
  type SpecDiagnostic,
  type SpecDiagnosticCode,
} from './diagnostics.js';
export type { ServiceEnv, ServiceMain } from './env.js';
export type { ExitInfo } from './isolation.js';
export {
  type DependencySpec,
  type Isolation,
  loadSystemSpec,
  parseSystemSpec,
  type RestartPolicy,
  type ServiceSpec,
  type SystemSpec,
} from './spec.js';
export type { ChannelReport } from './startup.js';
export {
  type ServiceState,
  type ServiceStatus,
  type ShutdownReport,
  System,
  type SystemEvent,
  type SystemOptions,
} from './supervisor.js';
