/**
 * A TCP/IP server in the shape of FTL's, over an imaginary network: `connect()` stands in for a
 * SYN arriving. Each listen channel's queue is the accept backlog and each connection channel's
 * queue is the TCP buffer, so the channel's backpressure is TCP's flow control.
 */
import { Channel } from 'ftl-ipc';
import { ConnectionServer, ListenServer, serveControl } from './tcpip.generated.js';

export class TcpipServer {
  readonly #listeners = new Map<number, ListenServer>();

  /** Serves one client's control channel until it closes. */
  serve(control: Channel): Promise<void> {
    return serveControl(control, {
      tcpListen: ({ port }) => {
        if (this.#listeners.has(port)) throw new Error(`port ${port} is already listening`);
        // A backlog of 4 pending connections, as `listen(fd, 4)` would give.
        const [server, client] = Channel.pair({ capacity: 4 });
        this.#listeners.set(port, new ListenServer(server));
        return { listen: client };
      },
    });
  }

  /**
   * A peer connects to `port` and sends `segments`; the server echoes each one back, then
   * closes. Returns false when refused: nobody listens or the backlog is full.
   */
  connect(port: number, segments: readonly Uint8Array[]): boolean {
    const listener = this.#listeners.get(port);
    if (listener === undefined) return false;
    const [server, client] = Channel.pair();
    // A full backlog refuses the connection, as a real stack drops the SYN.
    if (!listener.tcpAccepted({ conn: client }, { onFull: 'drop' })) {
      server.close();
      client.close();
      return false;
    }
    void this.#echo(new ConnectionServer(server), segments);
    return true;
  }

  async #echo(conn: ConnectionServer, segments: readonly Uint8Array[]): Promise<void> {
    // Waiting instead of dropping: TCP data must not be lost, so a full buffer stalls the sender.
    for (const data of segments) await conn.tcpReceivedWait({ data });
    await conn.serve({
      tcpSend: async ({ data }) => {
        if (data.length === 0) await conn.tcpClosedWait();
        else await conn.tcpReceivedWait({ data });
      },
    });
  }
}
