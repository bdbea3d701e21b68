export {
  Channel,
  type ChannelOptions,
  type ChannelStats,
  type CloseReason,
  DEFAULT_LIMITS,
  type Message,
  type MessageView,
  type OnFull,
  type OutgoingMessage,
  type SendBatchOptions,
  type SendOptions,
  type WaitOptions,
} from './channel.js';
export type { ChannelLimits } from './endpoint.js';
export type { Handle } from './handle.js';
