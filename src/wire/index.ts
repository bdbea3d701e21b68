/**
 * The `ftl-ipc/wire` entry: what generated code and tools use to encode, decode, call and serve.
 * The option types callers write (CallOptions, ServeOptions, ...) are on the main entry.
 */

export { type CallRouter, ProtocolClient } from './client.js';
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
export { RpcClient } from './rpc.js';
export { handlerErrorChannel, invalidRequestChannel, RpcServer } from './rpc-server.js';
export { Writer } from './writer.js';
