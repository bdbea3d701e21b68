/** What generated code and tools use to encode, decode, call and serve. */
export { runtimeDescriptors } from './codec.js';
export { FLAG_ERROR, FLAG_REPLY, HEADER_BYTES, VERSION } from './frame.js';
export {
  type CallDescriptor,
  decodeMessage,
  encodeMessage,
  encodeReply,
  type MessageDescriptor,
  MessageTable,
  type Received,
} from './message.js';
export { Reader } from './reader.js';
export { type CallOptions, type ClientOptions, RpcClient } from './rpc.js';
export {
  type CallContext,
  invalidRequestChannel,
  RpcServer,
  type ServeOptions,
} from './rpc-server.js';
export { Writer } from './writer.js';
