/** Loads bench/rpc.proto for both sides of the gRPC peer. */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export function loadProto(): {
  service: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
} {
  const file = fileURLToPath(new URL('../../bench/rpc.proto', import.meta.url));
  const loaded = grpc.loadPackageDefinition(loadSync(file)) as unknown as {
    bench: { Ping: grpc.ServiceClientConstructor };
  };
  return { service: loaded.bench.Ping.service, Client: loaded.bench.Ping };
}
