/**
 * Where a sender's messages go: a TCP connection (connect, read the greeting,
 * write) or a UDP socket (FFI `sendmmsg` where available, else Deno's API).
 *
 * @module
 */
import { connectError, TimeoutError } from "../shared/errors.ts";
import { BufferedReader } from "../shared/reader.ts";
import { decodeText } from "../shared/codec.ts";
import { BatchSender, fastUdp, FastUdpSocket, sockaddrIn } from "./udp_ffi.ts";
import { FastTcpConn } from "./tcp_ffi.ts";
import { fastLibc } from "./libc.ts";

/** What opening a link needs from a sender's input. */
export interface LinkInput {
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** UDP: `deno` forces Deno's datagram API. */
  udpEngine?: "auto" | "deno";
  /** TCP: `deno` forces `Deno.connect` instead of FFI `send()`. */
  tcpEngine?: "auto" | "deno";
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Where a sender's messages go: a TCP connection or a UDP socket. */
export interface Link {
  greeting: string;
  /** Which path sends: `ffi` (libc through FFI) or `deno` (Deno's socket API). */
  engine: "ffi" | "deno";
  /**
   * Sends `bytes`, the concatenation of messages of `sizes` bytes: undefined when
   * they went out synchronously (the FFI paths, usually), else a promise.
   */
  send(bytes: Uint8Array, sizes: number[]): Promise<void> | undefined;
  /**
   * Synchronous links (FFI TCP): one non-blocking send, returning how many bytes
   * the kernel took (fewer while its socket buffer is full). The sender keeps the
   * rest and retries on its own schedule, never waiting on a timer it cannot run.
   */
  trySend?(bytes: Uint8Array): number;
  sendErrors: number;
  close(): void;
}

function connectFailure(input: LinkInput, error: unknown): Error {
  const cause = error instanceof DOMException && error.name === "TimeoutError"
    ? new TimeoutError("the connection", input.connectTimeoutMs)
    : error;
  return connectError(input.host, input.port, cause);
}

/** TCP through libc: a synchronous `send()` per write (see tcp_ffi.ts). */
async function openFastTcp(
  input: LinkInput,
  address: Uint8Array,
  signal?: AbortSignal,
): Promise<Link> {
  const c = fastLibc()!;
  let conn: FastTcpConn;
  try {
    conn = await FastTcpConn.connect(c, address, input.connectTimeoutMs, signal);
  } catch (error) {
    throw connectFailure(input, error);
  }
  try {
    const greetingBytes = await conn.readLine(4096, input.connectTimeoutMs);
    return {
      greeting: greetingBytes ? decodeText(greetingBytes) : "",
      engine: "ffi",
      send(bytes) {
        const n = conn.trySend(bytes);
        return n === bytes.length ? undefined : conn.write(bytes.subarray(n));
      },
      trySend: (bytes) => conn.trySend(bytes),
      sendErrors: 0,
      close: () => conn.close(),
    };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Opens a TCP link: FFI where it runs (unless `tcpEngine` is `deno`), else `Deno.connect`. */
export async function openTcp(input: LinkInput, signal?: AbortSignal): Promise<Link> {
  const address = input.tcpEngine === "deno" || !fastLibc()
    ? null
    : sockaddrIn(input.host, input.port);
  if (address) return await openFastTcp(input, address, signal);
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({
      hostname: input.host,
      port: input.port,
      signal: AbortSignal.any([
        AbortSignal.timeout(input.connectTimeoutMs),
        ...(signal ? [signal] : []),
      ]),
    });
  } catch (error) {
    throw connectFailure(input, error);
  }
  conn.setNoDelay(true);
  const close = () => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  try {
    const reader = new BufferedReader(conn);
    const greetingBytes = await reader.readLine(4096, {
      timeout: input.connectTimeoutMs,
      what: "the server's greeting",
    });
    const greeting = greetingBytes instanceof Uint8Array ? decodeText(greetingBytes) : "";
    return {
      greeting,
      engine: "deno",
      send: (bytes) => writeAll(conn, bytes),
      sendErrors: 0,
      close,
    };
  } catch (error) {
    close();
    throw error;
  }
}

export function openUdp(input: LinkInput): Link {
  const c = input.udpEngine === "deno" ? null : fastUdp();
  const address = sockaddrIn(input.host, input.port);
  if (c && address) {
    // Synchronous sendmmsg through FFI: an async op per datagram caps Deno's own
    // API near 50,000 datagrams/s.
    const fast = FastUdpSocket.bind(c, "0.0.0.0", 0, 4 * 1024 * 1024);
    const sender = new BatchSender(fast, address);
    const link: Link = {
      greeting: "",
      engine: "ffi",
      sendErrors: 0,
      send(bytes, sizes) {
        link.sendErrors += sender.send(bytes, sizes);
        return undefined;
      },
      close: () => fast.close(),
    };
    return link;
  }
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: input.host.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  });
  const target: Deno.NetAddr = { transport: "udp", hostname: input.host, port: input.port };
  const link: Link = {
    greeting: "",
    engine: "deno",
    sendErrors: 0,
    async send(bytes, sizes) {
      let offset = 0;
      for (const size of sizes) {
        try {
          await socket.send(bytes.subarray(offset, offset + size), target);
        } catch {
          // No receiver yet (ICMP port unreachable) or a full buffer: the datagram is lost.
          link.sendErrors++;
        }
        offset += size;
      }
    },
    close() {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    },
  };
  return link;
}
