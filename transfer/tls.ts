/**
 * TLS for `transfer serve --tls-cert FILE --tls-key FILE`: a TLS front on the
 * public address that terminates TLS and relays each connection to the STEP
 * server listening on loopback, so TLS works the same in every server mode of
 * shared/server.ts (whose listeners are plain TCP). The relay keeps the
 * server's bounds: a handshake has a timeout, each direction is piped with
 * backpressure, and either side closing closes both.
 *
 * @module
 */
import { errorMessage } from "../shared/errors.ts";

/** PEM certificate chain and private key. */
export interface TlsKeyPair {
  cert: string;
  key: string;
}

/** A running TLS front. */
export interface TlsFront {
  hostname: string;
  port: number;
  close(): Promise<void>;
}

/** Milliseconds a client gets to finish the TLS handshake. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Reads `--tls-cert` and `--tls-key` files, with errors that name the file. */
export function readKeyPair(certFile: string, keyFile: string): TlsKeyPair {
  const read = (path: string, what: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      throw new Error(`Cannot read the TLS ${what} ${path}: ${errorMessage(error)}`);
    }
  };
  return { cert: read(certFile, "certificate"), key: read(keyFile, "key") };
}

async function relay(
  outer: Deno.TlsConn,
  target: { hostname: string; port: number },
  onError: (message: string) => void,
): Promise<void> {
  let inner: Deno.TcpConn | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      outer.handshake(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("TLS handshake timed out")),
          HANDSHAKE_TIMEOUT_MS,
        );
      }),
    ]);
    clearTimeout(timer);
    inner = await Deno.connect(target);
    inner.setNoDelay(true);
    await Promise.allSettled([
      outer.readable.pipeTo(inner.writable),
      inner.readable.pipeTo(outer.writable),
    ]);
  } catch (error) {
    onError(`TLS connection from ${outer.remoteAddr.hostname}: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
    for (const conn of [outer, inner]) {
      try {
        conn?.close();
      } catch {
        // Closed by the pipe.
      }
    }
  }
}

/** Listens with TLS on `hostname:port` and relays every connection to `target`. */
export function startTlsFront(options: {
  hostname: string;
  port: number;
  keyPair: TlsKeyPair;
  target: { hostname: string; port: number };
  onError?: (message: string) => void;
}): TlsFront {
  let listener: Deno.TlsListener;
  try {
    listener = Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.keyPair.cert,
      key: options.keyPair.key,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Cannot listen on ${options.hostname}:${options.port}: address already in use`,
      );
    }
    throw error;
  }
  const open = new Set<Promise<void>>();
  const onError = options.onError ?? (() => {});
  const loop = (async () => {
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          return;
        }
        // A connection reset while queued is no fault of the server.
        continue;
      }
      const task = relay(conn, options.target, onError).finally(() => open.delete(task));
      open.add(task);
    }
  })();
  return {
    hostname: options.hostname,
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await loop;
      await Promise.race([
        Promise.allSettled([...open]),
        new Promise((resolve) => setTimeout(resolve, 1000)),
      ]);
    },
  };
}
