import net from 'node:net';

/**
 * A TCP proxy in front of a real server, to simulate the server going away without touching it
 * (PostgreSQL and Redis on this machine are shared). `drop()` destroys every open connection and
 * stops listening, so new connections are refused; `restore()` listens again on the same port.
 */
export interface TcpProxy {
  readonly port: number;
  /** Connections accepted since start (both directions count once). */
  readonly accepted: number;
  /** Open client connections right now. */
  readonly open: number;
  readonly up: boolean;
  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string;
  drop(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let server: net.Server | undefined;
  let boundPort = port;

  const onConnection = (client: net.Socket) => {
    accepted++;
    const upstream = net.connect({ host: target.host, port: target.port });
    sockets.add(client);
    sockets.add(upstream);
    const teardown = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const listen = async () => {
    const s = net.createServer(onConnection);
    // The port may linger for a moment after close; retry briefly rather than fail the test.
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(boundPort, '127.0.0.1', () => {
            s.off('error', reject);
            resolve();
          });
        });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    boundPort = (s.address() as net.AddressInfo).port;
    server = s;
  };

  const stopListening = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };

  await listen();
  return {
    get port() {
      return boundPort;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return [...sockets].length / 2;
    },
    get up() {
      return server !== undefined;
    },
    rewrite(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(boundPort);
      return u.toString();
    },
    drop: stopListening,
    async restore() {
      if (!server) await listen();
    },
    close: stopListening,
  };
}
