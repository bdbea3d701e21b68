export { exportEndpoint, importEndpoint } from './endpoint-token.js';
export type { EndpointToken } from './shared-endpoint.js';
export {
  type ResolvedWakePolicy,
  setDefaultWakePolicy,
  type WakePolicy,
} from './wake.js';
