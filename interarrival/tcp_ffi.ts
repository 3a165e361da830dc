/**
 * The fast TCP send path, through libc by FFI (Linux, 64-bit, IPv4,
 * `--allow-ffi`): a non-blocking socket whose writes are one synchronous
 * `send()` each. A `Deno.Conn` write is an async op (a trip through the event
 * loop per message); at 100 connections × 1,000 messages/s those trips are what
 * made sends late. `links.ts` falls back to `Deno.connect` where this path
 * cannot run; both send the same bytes.
 *
 * @module
 */
import { sleep } from "../shared/clock.ts";
import { TimeoutError } from "../shared/errors.ts";
import { AF_INET, errno, type Libc, setInt, SOL_SOCKET } from "./libc.ts";

const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SO_ERROR = 4;
const POLLIN = 1;
const POLLOUT = 4;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const EAGAIN = 11;
const EINTR = 4;
const EINPROGRESS = 115;
/** Longest pause between polls while connecting or awaiting the greeting (from 1 ms, doubling). */
const MAX_POLL_MS = 16;

/** The Deno error a socket errno stands for (so `connectError` words it as Deno's would). */
function socketError(code: number): Error {
  const E = Deno.errors;
  const known: Record<number, () => Error> = {
    111: () => new E.ConnectionRefused("Connection refused"),
    104: () => new E.ConnectionReset("Connection reset by peer"),
    32: () => new E.BrokenPipe("Broken pipe"),
    103: () => new E.ConnectionAborted("Connection aborted"),
    110: () => new E.TimedOut("Connection timed out"),
    99: () => new E.AddrNotAvailable("Address not available"),
    113: () => new Error("Host unreachable"),
    101: () => new Error("Network unreachable"),
    24: () => new Error("Too many open files"),
  };
  return known[code]?.() ?? new Error(`socket error (errno ${code})`);
}

/** One TCP connection opened and written through libc. */
export class FastTcpConn {
  #poll = new Uint8Array(8);
  #pollView = new DataView(this.#poll.buffer);
  #closed = false;

  private constructor(private readonly c: Libc, readonly fd: number) {
    this.#pollView.setInt32(0, fd, true);
  }

  /** Whether `events` (POLLIN/POLLOUT) are ready now. */
  #ready(events: number): boolean {
    this.#pollView.setInt16(4, events, true);
    this.#pollView.setInt16(6, 0, true);
    return this.c.poll(this.#poll, 1n, 0) > 0;
  }

  /**
   * Connects to `address` (a `sockaddr_in`) within `timeoutMs`, polling (1 ms,
   * then doubling up to 16 ms) so that many connections can open at once in one thread.
   */
  static async connect(
    c: Libc,
    address: Uint8Array,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<FastTcpConn> {
    const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw socketError(errno(c));
    const conn = new FastTcpConn(c, fd);
    try {
      if (c.connect(fd, address, 16) !== 0) {
        const code = errno(c);
        if (code !== EINPROGRESS) throw socketError(code);
        const deadline = performance.now() + timeoutMs;
        for (let pause = 1; !conn.#ready(POLLOUT); pause = Math.min(pause * 2, MAX_POLL_MS)) {
          signal?.throwIfAborted();
          if (performance.now() >= deadline) throw new TimeoutError("the connection", timeoutMs);
          await sleep(pause);
        }
        const error = new Int32Array(1);
        c.getsockopt(fd, SOL_SOCKET, SO_ERROR, error, new Uint32Array([4]));
        if (error[0] !== 0) throw socketError(error[0]);
      }
      setInt(c, fd, TCP_NODELAY, 1, IPPROTO_TCP);
      return conn;
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /**
   * Reads one line (the server's greeting) of at most `max` bytes within
   * `timeoutMs`; null if the server closed first. Bytes after it are dropped
   * (the server sends nothing else).
   */
  async readLine(max: number, timeoutMs: number): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(max);
    let used = 0;
    const deadline = performance.now() + timeoutMs;
    let pause = 1;
    while (used < max) {
      const n = Number(this.c.recv(this.fd, buffer.subarray(used), BigInt(max - used), 0));
      if (n === 0) return null;
      if (n < 0) {
        const code = errno(this.c);
        if (code !== EAGAIN && code !== EINTR) throw socketError(code);
        if (performance.now() >= deadline) {
          throw new TimeoutError("the server's greeting", timeoutMs);
        }
        if (!this.#ready(POLLIN)) await sleep(pause);
        pause = Math.min(pause * 2, MAX_POLL_MS);
        continue;
      }
      const end = buffer.subarray(used, used + n).indexOf(10);
      used += n;
      if (end >= 0) return buffer.slice(0, used - n + end);
    }
    throw new Error(`the server's greeting is longer than ${max} bytes`);
  }

  #lastSize = 0;
  #lastSizeBig = 0n;

  /** `length` as the BigInt `size_t` wants, reused while it repeats (no allocation per send). */
  #size(length: number): bigint {
    if (length !== this.#lastSize) [this.#lastSize, this.#lastSizeBig] = [length, BigInt(length)];
    return this.#lastSizeBig;
  }

  /**
   * One non-blocking `send()`: returns how many bytes the kernel took (all of
   * them while the socket buffer has room, the usual case); throws if the
   * connection failed.
   */
  trySend(bytes: Uint8Array): number {
    const n = this.c.send32(this.fd, bytes, this.#size(bytes.length), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n;
    const code = errno(this.c);
    if (code !== EAGAIN && code !== EINTR) throw socketError(code);
    return 0;
  }

  /**
   * Hands every byte to the kernel, waiting for room a millisecond at a time
   * while the socket buffer is full (as a `Deno.Conn` write would wait).
   */
  async write(bytes: Uint8Array): Promise<void> {
    let offset = this.trySend(bytes);
    while (offset < bytes.length) {
      if (!this.#ready(POLLOUT)) await sleep(1);
      offset += this.trySend(bytes.subarray(offset));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.c.close(this.fd);
  }
}
