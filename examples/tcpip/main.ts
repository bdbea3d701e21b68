/**
 * An application using the TCP/IP server through generated clients: it listens on port 80,
 * accepts a connection, echoes the peer's data back and hangs up. Run with
 * `node dist/examples/tcpip/main.js`.
 */
import { Channel } from 'ftl-ipc';
import { TcpipServer } from './server.js';
import { ConnectionClient, ControlClient, ListenClient } from './tcpip.generated.js';

export async function runTcpip(): Promise<string[]> {
  const tcpip = new TcpipServer();
  const [app, service] = Channel.pair();
  const serving = tcpip.serve(service);
  const control = new ControlClient(app, { timeoutMs: 1000 });
  const log: string[] = [];

  const { listen } = await control.tcpListen({ port: 80 });
  const listener = new ListenClient(listen);
  tcpip.connect(80, [new TextEncoder().encode('hello')]);

  const accepted = await listener.recv();
  const conn = new ConnectionClient(accepted.value.conn);
  for await (const event of conn) {
    if (event.kind === 'tcpReceived') {
      const text = new TextDecoder().decode(event.value.data);
      log.push(`received ${JSON.stringify(text)}`);
      // Echo once, then ask the server to close by sending an empty segment.
      conn.tcpSend({ data: text === 'hello' ? new TextEncoder().encode('bye') : new Uint8Array() });
    } else {
      log.push('closed by the server');
      break;
    }
  }
  conn.close();
  listener.close();
  control.close();
  await serving;
  return log;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await runTcpip()) process.stdout.write(`${line}\n`);
}
