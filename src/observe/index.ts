export {
  type ChannelSample,
  MetricsRegistry,
  renderChannelMetrics,
  renderSystemMetrics,
} from './metrics.js';
export { type ObservedSystem, type ObserveOptions, ObserveServer } from './server.js';
export { disableTracing, enableTracing } from './tracing.js';
