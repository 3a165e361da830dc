/**
 * The libc calls of taskserver's FFI engines (Linux, x86_64/aarch64, IPv4,
 * `--allow-ffi`): non-blocking sockets, `accept4`, `recv`/`send`, `epoll`, and
 * an `eventfd` to wake a waiting loop. A `Deno.Conn` costs several async ops per
 * connection (accept, read, write, close: each a trip through the event loop);
 * these are synchronous calls, and one `epoll_wait` reports a batch of sockets.
 * Pure wrappers: no policy here (the server is `ffi_server.ts`, the one-request
 * clients `ffi_burst.ts`). {@linkcode ffiEngineUnavailable} says why they cannot
 * run; callers then use the `Deno.Conn` engines, which give the same results.
 *
 * @module
 */
import { UsageError } from "../shared/errors.ts";

const EPOLL_WAIT = { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" } as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: EPOLL_WAIT,
  // The same call on a runtime thread: the isolate runs on while it waits.
  epoll_wait_async: { ...EPOLL_WAIT, name: "epoll_wait", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

// Linux values (the same on x86_64 and aarch64).
const AF_INET = 2;
/** SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC. */
const TCP_SOCKET_TYPE = 1 | 0o4000 | 0o2000000;
/** O_NONBLOCK | O_CLOEXEC, for accept4 and eventfd (SOCK_ and EFD_ flags are the same bits). */
const NONBLOCK_CLOEXEC = 0o4000 | 0o2000000;
const CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const [SO_REUSEADDR, SO_ERROR, SO_REUSEPORT] = [2, 4, 15];
const [EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD] = [1, 2, 3];
/** MSG_DONTWAIT | MSG_NOSIGNAL: never block, never SIGPIPE. */
const SEND_FLAGS = 0x40 | 0x4000;

/** Linux errno values the engines tell apart. */
export const Errno = {
  EINTR: 4,
  EAGAIN: 11,
  ENOMEM: 12,
  ENFILE: 23,
  EMFILE: 24,
  ENOBUFS: 105,
  EINPROGRESS: 115,
} as const;

/** epoll event bits (`ET`: edge-triggered). */
export const Epoll = { IN: 0x001, OUT: 0x004, ERR: 0x008, HUP: 0x010, ET: 1 << 31 } as const;

/** Which engine runs a server or a generator: `auto` picks `ffi` where it can run. */
export type EngineChoice = "auto" | "ffi" | "deno";
/** The engine that ran. */
export type Engine = "ffi" | "deno";

/** Parses `--engine` (`auto`, `ffi` or `deno`); a usage error otherwise. */
export function engineArg(text: string): EngineChoice {
  if (text === "auto" || text === "ffi" || text === "deno") return text;
  throw new UsageError(`Invalid --engine '${text}': expected auto, ffi or deno`);
}

/** Why the FFI engines cannot run here (or for `hostname`), or null when they can. */
export function ffiEngineUnavailable(hostname?: string): string | null {
  const platform = `${Deno.build.os}/${Deno.build.arch}`;
  if (platform !== "linux/x86_64" && platform !== "linux/aarch64") {
    return `the FFI engine runs on Linux x86_64 and aarch64 (this is ${platform})`;
  }
  if (hostname !== undefined && ipv4Bytes(hostname) === null) {
    return `the FFI engine takes IPv4 addresses (not ${hostname})`;
  }
  let ffi: Deno.PermissionState;
  try {
    ffi = Deno.permissions.querySync({ name: "ffi" }).state;
  } catch {
    return "FFI is not available in this runtime";
  }
  return ffi === "granted" ? null : "FFI is not permitted (run with --allow-ffi)";
}

/** The four bytes of an IPv4 literal (`localhost` is 127.0.0.1), or null. */
export function ipv4Bytes(hostname: string): number[] | null {
  const host = hostname === "localhost" ? "127.0.0.1" : hostname;
  const parts = host.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    return null;
  }
  return parts.map(Number);
}

/** `sockaddr_in` for an IPv4 literal and port (see {@linkcode ipv4Bytes}). */
export function sockaddrIn(hostname: string, port: number): Uint8Array {
  const bytes = ipv4Bytes(hostname);
  if (bytes === null) throw new Error(`not an IPv4 address: ${hostname}`);
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port);
  out.set(bytes, 4);
  return out;
}

/** errno → the Deno error class and text a `Deno.Conn` would throw for it. */
const SOCKET_ERRORS = new Map<number, [keyof typeof Deno.errors | null, string]>([
  [111, ["ConnectionRefused", "Connection refused"]],
  [104, ["ConnectionReset", "Connection reset by peer"]],
  [32, ["BrokenPipe", "Broken pipe"]],
  [103, ["ConnectionAborted", "Connection aborted"]],
  [110, ["TimedOut", "Connection timed out"]],
  [98, ["AddrInUse", "Address already in use"]],
  [99, ["AddrNotAvailable", "Address not available"]],
  [13, ["PermissionDenied", "Permission denied"]],
  [24, [null, "Too many open files"]],
]);

/** The Deno error a socket errno stands for (worded as Deno's own would be). */
export function socketError(code: number): Error {
  const [kind, text] = SOCKET_ERRORS.get(code) ?? [null, "socket error"];
  const message = `${text} (os error ${code})`;
  return kind === null ? new Error(message) : new Deno.errors[kind](message);
}

/** The libc calls, bound once per isolate. */
export class FfiLibc {
  readonly #s: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  readonly #errno: Deno.UnsafePointerView;
  /** One epoll_event: 12 bytes packed on x86_64, 16 elsewhere. */
  readonly eventSize = Deno.build.arch === "x86_64" ? 12 : 16;
  readonly #event: Uint8Array;
  readonly #eventView: DataView;
  readonly #int = new Int32Array(1);
  readonly #len = new Uint32Array(1);
  readonly #name = new Uint8Array(16);
  readonly #eight = new BigUint64Array([1n]);

  constructor() {
    this.#s = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    this.#errno = new Deno.UnsafePointerView(this.#s.__errno_location()!);
    this.#event = new Uint8Array(this.eventSize);
    this.#eventView = new DataView(this.#event.buffer);
  }

  /** errno of the last failed call on this thread. */
  errno(): number {
    return this.#errno.getInt32(0);
  }

  /** A non-blocking TCP socket, or `-errno`. */
  tcpSocket(): number {
    const fd = this.#s.socket(AF_INET, TCP_SOCKET_TYPE, 0);
    return fd >= 0 ? fd : -this.errno();
  }

  /**
   * A non-blocking listening socket on `address` (SO_REUSEADDR and
   * SO_REUSEPORT, so several join one port), or `-errno`.
   */
  listenSocket(address: Uint8Array, backlog: number): number {
    const fd = this.tcpSocket();
    if (fd < 0) return fd;
    this.#int[0] = 1;
    this.#s.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, this.#int, 4);
    this.#s.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, this.#int, 4);
    if (this.#s.bind(fd, address, 16) !== 0 || this.#s.listen(fd, backlog) !== 0) {
      const code = this.errno();
      this.#s.close(fd);
      return -code;
    }
    return fd;
  }

  /** The port a socket is bound to. */
  localPort(fd: number): number {
    this.#len[0] = 16;
    if (this.#s.getsockname(fd, this.#name, this.#len) !== 0) return -1;
    return (this.#name[2] << 8) | this.#name[3];
  }

  /** The next queued connection (non-blocking), or `-errno` (`-EAGAIN`: none). */
  accept(fd: number): number {
    const conn = this.#s.accept4(fd, null, null, NONBLOCK_CLOEXEC);
    return conn >= 0 ? conn : -this.errno();
  }

  /** Starts a connect: 0 when connected at once, else `-errno` (`-EINPROGRESS` usually). */
  connect(fd: number, address: Uint8Array): number {
    return this.#s.connect(fd, address, address.length) === 0 ? 0 : -this.errno();
  }

  /** The pending error of a socket (`SO_ERROR`, which also clears it). */
  socketError(fd: number): number {
    this.#len[0] = 4;
    if (this.#s.getsockopt(fd, SOL_SOCKET, SO_ERROR, this.#int, this.#len) !== 0) {
      return this.errno();
    }
    return this.#int[0];
  }

  /** Bytes received (0: the peer's end), or `-errno` (`-EAGAIN`: nothing yet). */
  recv(fd: number, buffer: Uint8Array): number {
    const n = Number(this.#s.recv(fd, buffer, BigInt(buffer.length), 0));
    return n >= 0 ? n : -this.errno();
  }

  /** Bytes the kernel took (non-blocking, no SIGPIPE), or `-errno`. */
  send(fd: number, bytes: Uint8Array): number {
    const n = Number(
      this.#s.send(fd, bytes, BigInt(bytes.length), SEND_FLAGS),
    );
    return n >= 0 ? n : -this.errno();
  }

  close(fd: number): void {
    this.#s.close(fd);
  }

  /** An eventfd (non-blocking) that wakes an epoll wait when {@linkcode wake}d, or `-errno`. */
  eventFd(): number {
    const fd = this.#s.eventfd(0, NONBLOCK_CLOEXEC);
    return fd >= 0 ? fd : -this.errno();
  }

  wake(fd: number): void {
    this.#s.write(fd, this.#eight, 8n);
  }

  /** Empties an eventfd after a wake. */
  drainWake(fd: number): void {
    this.#s.read(fd, this.#eight, 8n);
  }

  /** A new epoll instance, or `-errno`. */
  epollCreate(): number {
    const fd = this.#s.epoll_create1(CLOEXEC);
    return fd >= 0 ? fd : -this.errno();
  }

  #ctl(epfd: number, op: number, fd: number, events: number): number {
    this.#eventView.setUint32(0, events >>> 0, true);
    this.#eventView.setUint32(this.eventSize - 8, fd, true);
    this.#eventView.setUint32(this.eventSize - 4, 0, true);
    return this.#s.epoll_ctl(epfd, op, fd, this.#event) === 0 ? 0 : -this.errno();
  }

  /** Watches `fd` for `events`; its fd comes back with each event. 0 or `-errno`. */
  epollAdd(epfd: number, fd: number, events: number): number {
    return this.#ctl(epfd, EPOLL_CTL_ADD, fd, events);
  }

  /** Changes what `fd` is watched for. 0 or `-errno`. */
  epollModify(epfd: number, fd: number, events: number): number {
    return this.#ctl(epfd, EPOLL_CTL_MOD, fd, events);
  }

  epollDelete(epfd: number, fd: number): void {
    this.#ctl(epfd, EPOLL_CTL_DEL, fd, 0);
  }

  /**
   * Ready events into `buffer`, waiting up to `timeoutMs` with this thread (the
   * isolate waits too): their count, or `-errno`.
   */
  epollPoll(epfd: number, buffer: Uint8Array, timeoutMs = 0): number {
    const n = this.#s.epoll_wait(epfd, buffer, buffer.length / this.eventSize, timeoutMs);
    return n >= 0 ? n : -this.errno();
  }

  /** Waits up to `timeoutMs` on a runtime thread (the isolate keeps running); count or -1. */
  epollWait(epfd: number, buffer: Uint8Array, timeoutMs: number): Promise<number> {
    return this.#s.epoll_wait_async(epfd, buffer, buffer.length / this.eventSize, timeoutMs);
  }

  /** The events of event `i` in an epoll buffer ({@linkcode readyFd}: its fd). */
  eventMask(view: DataView, i: number): number {
    return view.getUint32(i * this.eventSize, true);
  }

  readyFd(view: DataView, i: number): number {
    return view.getUint32(i * this.eventSize + this.eventSize - 8, true);
  }
}

/** Longest the isolate waits in `epoll_wait` itself while busy (timers wait that long). */
const BUSY_WAIT_MS = 1;
/** Empty busy waits in a row after which the pump waits on a runtime thread. */
const IDLE_ROUNDS = 3;
/** Longest stretch of busy waits before the event loop gets a turn. */
const YIELD_MS = 8;

/**
 * Waits for an epoll instance's events the cheap way for the moment. While
 * sockets are busy, `epoll_wait` runs on this thread with a 1 ms timeout (about
 * 2 µs a call); a wait on a runtime thread (`nonblocking` FFI) costs about 100
 * µs of hand-over, which per event was most of a busy server's CPU. Once idle
 * (three empty waits), or every 8 ms, it waits on a runtime thread so that the
 * event loop runs timers, signals and other work meanwhile; callers run their
 * own due timers after every wait.
 */
export class EpollPump {
  readonly events: Uint8Array;
  readonly view: DataView;
  #idle = IDLE_ROUNDS;
  #lastYield = performance.now();

  constructor(private readonly lib: FfiLibc, private readonly epfd: number, capacity = 1024) {
    this.events = new Uint8Array(capacity * lib.eventSize);
    this.view = new DataView(this.events.buffer);
  }

  /**
   * Events ready now or soon (their count, maybe 0). `idleTimeoutMs`: longest
   * wait once idle; `busyTimeoutMs`: longest wait of this thread while busy
   * (callers with a timer due sooner pass less).
   */
  async wait(idleTimeoutMs: number, busyTimeoutMs = BUSY_WAIT_MS): Promise<number> {
    const now = performance.now();
    if (this.#idle < IDLE_ROUNDS && now - this.#lastYield < YIELD_MS) {
      const n = this.lib.epollPoll(this.epfd, this.events, Math.max(0, busyTimeoutMs));
      if (n > 0) this.#idle = 0;
      else this.#idle++;
      return Math.max(0, n);
    }
    this.#lastYield = now;
    const timeout = this.#idle >= IDLE_ROUNDS ? idleTimeoutMs : 0;
    const n = await this.lib.epollWait(this.epfd, this.events, timeout);
    this.#lastYield = performance.now();
    if (n > 0) this.#idle = 0;
    return Math.max(0, n);
  }
}

let shared: FfiLibc | undefined;

/** The isolate's libc binding (bound on first use). */
export function ffiLibc(): FfiLibc {
  return shared ??= new FfiLibc();
}
