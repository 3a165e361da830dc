/**
 * The few Linux libc calls the FFI connect engine needs, through `Deno.dlopen`:
 * non-blocking `socket`/`connect`, `epoll`, `getsockopt(SO_ERROR)`,
 * `getsockname`, `close`, and `getrlimit`/`setrlimit` for the open-file limit.
 * Pure wrappers: no policy here (see `ffi_engine.ts`).
 *
 * @module
 */
import { ipv6Groups } from "./targets.ts";

/** Linux errno values the engine tells apart (the same on x86_64 and aarch64). */
export const Errno = {
  EPERM: 1,
  EINTR: 4,
  EAGAIN: 11,
  EACCES: 13,
  ENFILE: 23,
  EMFILE: 24,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNRESET: 104,
  ECONNABORTED: 103,
  ENOBUFS: 105,
  EISCONN: 106,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
} as const;

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
/** EPOLLOUT | EPOLLERR | EPOLLHUP: a connect has finished, one way or the other. */
const CONNECT_EVENTS = 0x004 | 0x008 | 0x010;
const RLIMIT_NOFILE = 7;

/**
 * The symbols, bound in three groups on first use: each bound symbol costs start-up
 * time (about 0.5 ms here), and a small scan of a host that answers at once needs
 * neither epoll nor the open-file limit.
 */
const CORE = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;
const EPOLL = {
  // Only a connect that epoll waited for has its error read this way.
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;
const LIMITS = {
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

/** Why the FFI engine cannot run here, or `null` when it can. */
export function ffiUnavailableReason(): string | null {
  if (Deno.build.os !== "linux") return `FFI engine is Linux only (this is ${Deno.build.os})`;
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `FFI engine supports x86_64 and aarch64 (this is ${Deno.build.arch})`;
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return "FFI is not permitted (run with --allow-ffi)";
    }
  } catch {
    return "FFI is not available in this runtime";
  }
  return null;
}

/** A socket address in the form `connect` takes, with what `getsockname` compares. */
export interface SockAddr {
  bytes: Uint8Array;
  family: 4 | 6;
}

/** Builds a `sockaddr_in`/`sockaddr_in6` for a literal address and port. */
export function sockAddr(address: string, port: number, family: 4 | 6): SockAddr {
  if (family === 4) {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port, false);
    address.split(".").forEach((part, i) => (bytes[4 + i] = Number(part)));
    return { bytes, family };
  }
  const bytes = new Uint8Array(28);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, AF_INET6, true);
  view.setUint16(2, port, false);
  bytes.set(ipv6Bytes(address), 8);
  return { bytes, family };
}

/** The 16 bytes of an IPv6 literal (canonical or not, `::ffff:a.b.c.d` included). */
export function ipv6Bytes(address: string): Uint8Array {
  let text = address;
  const out = new Uint8Array(16);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (dotted) {
    tail = dotted[1].split(".").map(Number);
    text = text.slice(0, -dotted[1].length) + "0:0";
  }
  ipv6Groups(text).forEach((group, i) => {
    const value = parseInt(group, 16);
    out[2 * i] = value >> 8;
    out[2 * i + 1] = value & 0xff;
  });
  if (dotted) out.set(tail, 12);
  return out;
}

/** The libc calls, bound once per isolate. */
export class Libc {
  readonly #s: Deno.DynamicLibrary<typeof CORE>["symbols"];
  #epollSymbols: Deno.DynamicLibrary<typeof EPOLL>["symbols"] | null = null;
  #limitSymbols: Deno.DynamicLibrary<typeof LIMITS>["symbols"] | null = null;
  /** errno itself: this thread's `errno` memory (read without a call). */
  readonly #errno: Int32Array;
  readonly #int = new Uint8Array(4);
  readonly #intView = new DataView(this.#int.buffer);
  readonly #len = new Uint8Array(4);
  readonly #lenView = new DataView(this.#len.buffer);
  readonly #name = new Uint8Array(28);
  readonly #rlimit = new BigUint64Array(2);
  /** One epoll_event: 12 bytes packed on x86_64, 16 elsewhere. */
  readonly eventSize = Deno.build.arch === "x86_64" ? 12 : 16;
  readonly #event: Uint8Array;
  readonly #eventView: DataView;

  constructor() {
    this.#s = Deno.dlopen("libc.so.6", CORE).symbols;
    this.#errno = new Int32Array(
      Deno.UnsafePointerView.getArrayBuffer(this.#s.__errno_location()!, 4),
    );
    this.#event = new Uint8Array(this.eventSize);
    this.#eventView = new DataView(this.#event.buffer);
  }

  get #epoll() {
    return this.#epollSymbols ??= Deno.dlopen("libc.so.6", EPOLL).symbols;
  }

  get #limits() {
    return this.#limitSymbols ??= Deno.dlopen("libc.so.6", LIMITS).symbols;
  }

  /** errno of the last failed call on this thread. */
  errno(): number {
    return this.#errno[0];
  }

  /** A non-blocking TCP socket, or `-errno`. */
  tcpSocket(family: 4 | 6): number {
    const fd = this.#s.socket(
      family === 4 ? AF_INET : AF_INET6,
      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
      0,
    );
    return fd >= 0 ? fd : -this.errno();
  }

  /** Starts a connect: 0 when connected at once, else `-errno` (`-EINPROGRESS` usually). */
  connect(fd: number, address: SockAddr): number {
    return this.#s.connect(fd, address.bytes, address.bytes.length) === 0 ? 0 : -this.errno();
  }

  /** The pending error of a socket (`SO_ERROR`, which also clears it). */
  socketError(fd: number): number {
    this.#lenView.setUint32(0, 4, true);
    if (this.#epoll.getsockopt(fd, SOL_SOCKET, SO_ERROR, this.#int, this.#len) !== 0) {
      return this.errno();
    }
    return this.#intView.getInt32(0, true);
  }

  /** True when a connected socket's own address is `address` (a TCP self-connect). */
  isSelfConnect(fd: number, address: SockAddr): boolean {
    this.#lenView.setUint32(0, this.#name.length, true);
    if (this.#s.getsockname(fd, this.#name, this.#len) !== 0) return false;
    const own = this.#name;
    const want = address.bytes;
    // Port and address: bytes 2-7 (IPv4) or 2-3 and 8-23 (IPv6).
    if (own[2] !== want[2] || own[3] !== want[3]) return false;
    const [from, to] = address.family === 4 ? [4, 8] : [8, 24];
    for (let i = from; i < to; i++) if (own[i] !== want[i]) return false;
    return true;
  }

  close(fd: number): void {
    this.#s.close(fd);
  }

  /** A new epoll instance, or `-errno`. */
  epollCreate(): number {
    const fd = this.#epoll.epoll_create1(EPOLL_CLOEXEC);
    return fd >= 0 ? fd : -this.errno();
  }

  /** Watches `fd` for the end of its connect; `data` comes back with the event. 0 or `-errno`. */
  epollAdd(epfd: number, fd: number, data: number): number {
    this.#eventView.setUint32(0, CONNECT_EVENTS, true);
    this.#eventView.setUint32(this.eventSize - 8, data, true);
    this.#eventView.setUint32(this.eventSize - 4, 0, true);
    return this.#epoll.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, this.#event) === 0 ? 0 : -this.errno();
  }

  /** Ready events into `buffer` without waiting: their count, or `-errno`. */
  epollPoll(epfd: number, buffer: Uint8Array): number {
    const n = this.#epoll.epoll_wait(epfd, buffer, buffer.length / this.eventSize, 0);
    return n >= 0 ? n : -this.errno();
  }

  /** Waits up to `timeoutMs` on a runtime thread (the isolate keeps running); count or -1. */
  epollWait(epfd: number, buffer: Uint8Array, timeoutMs: number): Promise<number> {
    return this.#epoll.epoll_wait_async(epfd, buffer, buffer.length / this.eventSize, timeoutMs);
  }

  /** The `data` of event `i` in an epoll buffer. */
  eventData(view: DataView, i: number): number {
    return view.getUint32(i * this.eventSize + this.eventSize - 8, true);
  }

  /**
   * The open-file limit `{ soft, hard }` (`RLIMIT_NOFILE`), raising the soft limit
   * towards `want` (never past the hard limit) first, as nmap does.
   */
  openFileLimit(want = 0): { soft: number; hard: number } | null {
    if (this.#limits.getrlimit(RLIMIT_NOFILE, new Uint8Array(this.#rlimit.buffer)) !== 0) {
      return null;
    }
    const cap = (value: bigint) => (value > 1_000_000n ? 1_000_000 : Number(value));
    let soft = cap(this.#rlimit[0]);
    const hard = cap(this.#rlimit[1]);
    if (want > soft && hard > soft) {
      const wanted = BigInt(Math.min(want, hard));
      const saved = this.#rlimit[0];
      this.#rlimit[0] = wanted;
      if (this.#limits.setrlimit(RLIMIT_NOFILE, new Uint8Array(this.#rlimit.buffer)) === 0) {
        soft = Number(wanted);
      } else this.#rlimit[0] = saved;
    }
    return { soft, hard };
  }
}

let shared: Libc | null = null;

/** The isolate's libc bindings, opened on first use. */
export function libc(): Libc {
  shared ??= new Libc();
  return shared;
}
