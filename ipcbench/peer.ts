/**
 * Two machines, as netperf and sockperf run: `ipcbench serve` answers on TCP and
 * UDP at one address, and `ipcbench bench --peer HOST:PORT` measures round trips
 * to it over the socket transports. A TCP connection starts with an 8-byte hello
 * (`IPCB`, then the message size as u32 big-endian); after it the server bumps
 * the counter of every message and sends it back, as the local echo does. A UDP
 * datagram is bumped and returned as it is (one datagram per message; an empty
 * datagram is ignored).
 *
 * The server is bounded: at most `maxConnections` at once, sizes capped at
 * {@linkcode MAX_SIZE}, every read waits at most `idleMs`; a bad hello or frame
 * closes that connection, never the server.
 *
 * @module
 */
import { ProtocolError, UsageError } from "../shared/errors.ts";
import { bumpCounter, MAX_SIZE, MIN_SIZE } from "./message.ts";
import { type EchoReport, type Link, readFull, withTimeout, writeFull } from "./transports.ts";

/** The hello's first four bytes. */
export const HELLO_MAGIC = "IPCB";
/** Bytes of a hello. */
export const HELLO_BYTES = 8;

/** Encodes a hello for `size`-byte messages. */
export function encodeHello(size: number): Uint8Array {
  const out = new Uint8Array(HELLO_BYTES);
  out.set(new TextEncoder().encode(HELLO_MAGIC));
  new DataView(out.buffer).setUint32(4, size);
  return out;
}

/** Decodes a hello; throws {@linkcode ProtocolError} naming what is wrong. */
export function decodeHello(bytes: Uint8Array): number {
  if (bytes.length !== HELLO_BYTES) throw new ProtocolError(`a hello has ${HELLO_BYTES} bytes`);
  if (new TextDecoder().decode(bytes.subarray(0, 4)) !== HELLO_MAGIC) {
    throw new ProtocolError("not an ipcbench hello (expected IPCB)");
  }
  const size = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4);
  if (size < MIN_SIZE || size > MAX_SIZE) {
    throw new ProtocolError(`message size ${size} is outside ${MIN_SIZE}..${MAX_SIZE}`);
  }
  return size;
}

/** Parses `HOST:PORT` (IPv6 in brackets); the error names the bad value. */
export function parseHostPort(text: string, flag: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(`Invalid ${flag} '${text}': expected HOST:PORT, e.g. 10.0.0.2:7077`);
  }
  return { hostname: match[1] ?? match[2], port };
}

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  hostname: string;
  port: number;
  maxConnections: number;
  idleMs: number;
  /** Stop after this many TCP connections have ended (tests, `--once`). */
  connections?: number;
  signal?: AbortSignal;
  onListening?: (address: { hostname: string; port: number }) => void;
  onError?: (message: string) => void;
}

/** What the server did. */
export interface ServeReport {
  connections: number;
  rejected: number;
  messages: number;
  datagrams: number;
}

/** Serves until aborted (or `connections` have ended); returns the counts. */
export async function serve(options: ServeOptions): Promise<ServeReport> {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const port = (listener.addr as Deno.NetAddr).port;
  const udp = Deno.listenDatagram({ hostname: options.hostname, port, transport: "udp" });
  const report: ServeReport = { connections: 0, rejected: 0, messages: 0, datagrams: 0 };
  const open = new Set<Deno.Conn>();
  const stop = () => {
    try {
      listener.close();
    } catch {
      // Already closed.
    }
    try {
      udp.close();
    } catch {
      // Already closed.
    }
    for (const conn of open) conn.close();
  };
  options.signal?.addEventListener("abort", stop, { once: true });
  options.onListening?.({ hostname: options.hostname, port });
  const datagrams = (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await udp.receive(buf);
      } catch {
        return; // closed
      }
      if (data.length < MIN_SIZE) continue;
      try {
        bumpCounter(data, data.length);
        await udp.send(data, from);
        report.datagrams++;
      } catch (error) {
        options.onError?.(`a datagram could not be answered: ${error}`);
      }
    }
  })();
  const handle = async (conn: Deno.Conn) => {
    try {
      (conn as Deno.TcpConn).setNoDelay(true);
      const hello = new Uint8Array(HELLO_BYTES);
      if (!(await withTimeout(readFull(conn, hello), options.idleMs, "a hello"))) return;
      const size = decodeHello(hello);
      const buf = new Uint8Array(size);
      while (await withTimeout(readFull(conn, buf), options.idleMs, "a message")) {
        bumpCounter(buf, size);
        await writeFull(conn, buf);
        report.messages++;
      }
    } catch (error) {
      options.onError?.(`a connection ended: ${error instanceof Error ? error.message : error}`);
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // Closed by stop().
      }
      report.connections++;
      if (options.connections !== undefined && report.connections >= options.connections) stop();
    }
  };
  const handlers = new Set<Promise<void>>();
  for (;;) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (error instanceof Deno.errors.BadResource || options.signal?.aborted) break;
      if (report.connections >= (options.connections ?? Infinity)) break;
      continue; // a connection reset while queued
    }
    if (open.size >= options.maxConnections) {
      report.rejected++;
      conn.close();
      continue;
    }
    open.add(conn);
    const p = handle(conn);
    handlers.add(p);
    p.finally(() => handlers.delete(p));
  }
  stop();
  await Promise.allSettled([...handlers, datagrams]);
  return report;
}

/** Opens a measuring link to a remote `ipcbench serve` (tcp or udp). */
export async function openPeerLink(
  transport: "tcp" | "udp",
  peer: { hostname: string; port: number },
  size: number,
  timeoutMs: number,
): Promise<Link> {
  const where = `the peer at ${peer.hostname}:${peer.port}`;
  if (transport === "tcp") {
    let conn: Deno.TcpConn;
    try {
      conn = await withTimeout(Deno.connect(peer), timeoutMs, `a connection to ${where}`);
    } catch (error) {
      throw new Error(
        `Cannot connect to ${peer.hostname}:${peer.port}: ${
          error instanceof Error ? error.message : error
        } (is \`ipcbench serve\` running there?)`,
      );
    }
    conn.setNoDelay(true);
    await writeFull(conn, encodeHello(size));
    return remoteLink(where, conn, async (message) => {
      await writeFull(conn, message);
      if (!(await readFull(conn, message))) throw new Error(`${where} closed the connection`);
      return message;
    });
  }
  const socket = Deno.listenDatagram({
    hostname: peer.hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
    transport: "udp",
  });
  const target: Deno.NetAddr = { transport: "udp", hostname: peer.hostname, port: peer.port };
  const buf = new Uint8Array(size + 1);
  return remoteLink(where, socket, async (message) => {
    await socket.send(message, target);
    const [data] = await socket.receive(buf);
    if (data.length !== message.length) {
      throw new Error(`a ${data.length}-byte datagram where ${message.length} were sent`);
    }
    message.set(data);
    return message;
  });
}

/** A link to a remote echo over `closer` (a connection or a socket); the first failure sticks. */
function remoteLink(
  where: string,
  closer: { close(): void },
  roundTrip: (message: Uint8Array) => Promise<Uint8Array>,
): Link {
  let failure: Error | null = null;
  return {
    touch: false,
    where,
    roundTrip(message) {
      return failure ? Promise.reject(failure) : roundTrip(message);
    },
    abort(error) {
      failure ??= error;
      closeQuietly(closer);
    },
    finish(): Promise<EchoReport | null> {
      closeQuietly(closer);
      return Promise.resolve(null);
    },
    kill: () => closeQuietly(closer),
  };
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}
