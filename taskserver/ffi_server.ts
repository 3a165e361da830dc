/**
 * The task server's FFI engine: the same protocol as `handler.ts` (framing,
 * delay before each answer, pause rule, line cap, idle timeout, max
 * connections with the busy refusal, grace on close), on sockets it owns
 * through libc (`ffi_libc.ts`) instead of `Deno.Conn`s.
 *
 * Why: in the 10,000-client burst a `Deno.Conn` costs an async op for each of
 * accept, read, write and close, each a trip through the event loop; measured
 * here, 100–200 µs of CPU per connection across server and generator, which
 * put the burst's total well past its delay. Here one `epoll_wait` (on a
 * runtime thread, so timers keep running) reports a batch of sockets, and
 * accept/recv/send/close are synchronous calls. Its listening sockets take the
 * kernel's full queue (`somaxconn`) each, not Deno's fixed 511.
 *
 * Each connection is a small state machine, stepped by socket events
 * (edge-triggered: no `epoll_ctl` per request) and by two timer queues: the
 * answer delay and the pause are the same for every connection, so each queue
 * is first-in first-out with one timer armed for its head. Like the handler, a
 * connection reads one chunk, answers its lines (waiting the delay before
 * each, the next delay starting once the previous answer is written), and only
 * then reads again, so a client that floods costs at most the kernel's
 * buffers.
 *
 * @module
 */
import { LineDecoder, type LineOverflow } from "../shared/codec.ts";
import { claimPort } from "../shared/server.ts";
import { listenError } from "../shared/errors.ts";
import {
  Epoll,
  EpollPump,
  Errno,
  type FfiLibc,
  ffiLibc,
  sockaddrIn,
  socketError,
} from "./ffi_libc.ts";
import { answerLine, type TaskServerInit } from "./protocol.ts";

/** Options of {@linkcode FfiTaskServer.start}. */
export interface FfiServerOptions {
  hostname: string;
  port: number;
  init: TaskServerInit;
  /** Listen-queue capacity wanted (split over listeners of at most `somaxconn` each). */
  backlog: number;
  maxConnections: number;
  /** What a connection over `maxConnections` is sent before it is closed. */
  refusal: string;
  /** Milliseconds open connections get to finish once the server closes. */
  graceMs: number;
  /** Called for each connection refused by `maxConnections`. */
  onRefuse: () => void;
  /** Join a port another isolate of this server listens on (pools): no claim. */
  join?: boolean;
}

type Line = Uint8Array | LineOverflow;

interface Conn {
  fd: number;
  decoder: LineDecoder;
  /** performance.now() of the last bytes read (idle timeout). */
  last: number;
  lines: Line[];
  next: number;
  /** An answer waits in the delay queue. */
  due: boolean;
  /** Bytes the kernel did not take yet (the client reads slowly). */
  out: Uint8Array | null;
  /** The socket may have bytes to read (edge-triggered: until recv says Errno.EAGAIN). */
  readable: boolean;
  eof: boolean;
  closed: boolean;
  /** Chunks read so far; a pause check is stale once another chunk came. */
  chunks: number;
  pauseArmed: boolean;
  /** Events it is watched for (0: not in the epoll set; added once it has to wait). */
  watched: number;
}

const EVENTS = 1024;
const RECV_BYTES = 64 * 1024;
/** Connections taken from a listener per event (the rest wait for the next round). */
const ACCEPT_BATCH = 256;
const IDLE_SWEEP_MS = 250;
const encoder = new TextEncoder();

/** The kernel's cap on one listen queue. */
function somaxconn(): number {
  try {
    const value = Number(Deno.readTextFileSync("/proc/sys/net/core/somaxconn").trim());
    return Number.isFinite(value) && value > 0 ? value : 4096;
  } catch {
    return 4096;
  }
}

/** A first-in first-out timer queue: every entry waits the same time, so one timer suffices. */
class FifoTimer<T> {
  #at: number[] = [];
  #items: (T | undefined)[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(private readonly fire: (item: T) => void) {}

  push(at: number, item: T): void {
    this.#at.push(at);
    this.#items.push(item);
    if (this.#timer === undefined) this.#arm();
  }

  #arm(): void {
    const wait = this.#at[this.#head] - performance.now();
    this.#timer = setTimeout(() => this.#run(), Math.max(0, Math.ceil(wait)));
  }

  #run(): void {
    this.#timer = undefined;
    this.runDue();
    if (this.#head < this.#at.length) this.#arm();
  }

  /** Fires the entries due now (the loop calls this between waits, its timer meanwhile). */
  runDue(): void {
    const now = performance.now();
    while (this.#head < this.#at.length && this.#at[this.#head] <= now) {
      const item = this.#items[this.#head]!;
      this.#items[this.#head++] = undefined;
      this.fire(item);
    }
    if (this.#head > 4096 && this.#head * 2 > this.#at.length) {
      this.#at = this.#at.slice(this.#head);
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Milliseconds until the next entry is due (Infinity: none). */
  nextIn(now: number): number {
    return this.#head < this.#at.length ? this.#at[this.#head] - now : Infinity;
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = [];
    this.#items = [];
    this.#head = 0;
  }
}

/** The task server on libc sockets (one isolate's share of a server). */
export class FfiTaskServer {
  readonly port: number;
  /** Settles once the server has stopped. */
  readonly finished: Promise<void>;
  readonly #lib: FfiLibc;
  readonly #o: FfiServerOptions;
  readonly #init: TaskServerInit;
  readonly #epfd: number;
  readonly #wakeFd: number;
  #listeners: number[];
  readonly #conns = new Map<number, Conn>();
  readonly #recv = new Uint8Array(RECV_BYTES);
  readonly #pump: EpollPump;
  readonly #answers: FifoTimer<Conn>;
  readonly #pauses: FifoTimer<{ conn: Conn; chunks: number }>;
  readonly #sweep: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #aborted = false;
  #closing: Promise<void> | null = null;
  #drained: (() => void) | null = null;

  private constructor(options: FfiServerOptions, listeners: number[], port: number) {
    const lib = ffiLibc();
    this.#lib = lib;
    this.#o = options;
    this.#init = options.init;
    this.#listeners = listeners;
    this.port = port;
    this.#epfd = lib.epollCreate();
    this.#wakeFd = lib.eventFd();
    if (this.#epfd < 0 || this.#wakeFd < 0) {
      for (const fd of listeners) lib.close(fd);
      throw socketError(-Math.min(this.#epfd, this.#wakeFd));
    }
    this.#pump = new EpollPump(lib, this.#epfd, EVENTS);
    lib.epollAdd(this.#epfd, this.#wakeFd, Epoll.IN);
    for (const fd of listeners) lib.epollAdd(this.#epfd, fd, Epoll.IN);
    this.#answers = new FifoTimer((conn) => this.#answerDue(conn));
    this.#pauses = new FifoTimer(({ conn, chunks }) => this.#pauseDue(conn, chunks));
    const idleMs = this.#init.idleTimeoutMs;
    if (idleMs > 0) {
      this.#sweep = setInterval(() => {
        const now = performance.now();
        for (const conn of this.#conns.values()) {
          if (now - conn.last >= idleMs) this.#closeConn(conn);
        }
      }, Math.min(IDLE_SWEEP_MS, idleMs));
      Deno.unrefTimer(this.#sweep);
    }
    this.finished = this.#loop();
  }

  /** Listens (throws `Cannot listen on HOST:PORT: ...`) and starts serving. */
  static start(options: FfiServerOptions): FfiTaskServer {
    const lib = ffiLibc();
    if (!options.join) claimPort(options.hostname, options.port);
    const perListener = somaxconn();
    const count = Math.max(1, Math.ceil(options.backlog / perListener));
    const listeners: number[] = [];
    let port = options.port;
    const fail = (code: number) => {
      for (const fd of listeners) lib.close(fd);
      return listenError(options.hostname, port, socketError(code));
    };
    for (let i = 0; i < count; i++) {
      const fd = lib.listenSocket(
        sockaddrIn(options.hostname, port),
        Math.min(perListener, options.backlog),
      );
      if (fd < 0) throw fail(-fd);
      listeners.push(fd);
      if (port === 0) port = lib.localPort(fd);
    }
    return new FfiTaskServer(options, listeners, port);
  }

  /** Connections open now. */
  get open(): number {
    return this.#conns.size;
  }

  /** Stops accepting, gives open connections `graceMs`, then closes them and stops. */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      this.#stopping = true;
      for (const fd of this.#listeners) this.#lib.close(fd);
      this.#listeners = [];
      if (this.#conns.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.#drained = resolve),
          new Promise((resolve) => timer = setTimeout(resolve, this.#o.graceMs)),
        ]);
        clearTimeout(timer);
      }
      this.#aborted = true;
      for (const conn of [...this.#conns.values()]) this.#closeConn(conn);
      this.#answers.clear();
      this.#pauses.clear();
      clearInterval(this.#sweep);
      this.#lib.wake(this.#wakeFd);
      await this.finished;
    })();
  }

  async #loop(): Promise<void> {
    const lib = this.#lib;
    try {
      while (!this.#aborted) {
        const now = performance.now();
        const soonest = Math.min(this.#answers.nextIn(now), this.#pauses.nextIn(now));
        const n = await this.#pump.wait(1000, Math.min(1, Math.ceil(soonest)));
        if (this.#aborted) break;
        this.#dispatch(n);
        // While the pump waits in this thread, the timer queues' own timers cannot fire.
        this.#answers.runDue();
        this.#pauses.runDue();
      }
    } finally {
      lib.close(this.#epfd);
      lib.close(this.#wakeFd);
    }
  }

  #dispatch(n: number): void {
    const lib = this.#lib;
    const view = this.#pump.view;
    for (let i = 0; i < n; i++) {
      const fd = lib.readyFd(view, i);
      const mask = lib.eventMask(view, i);
      const conn = this.#conns.get(fd);
      if (conn !== undefined) {
        if (mask & (Epoll.ERR | Epoll.HUP)) {
          // Reset: the client is gone, and so are the answers it waited for.
          this.#closeConn(conn);
          continue;
        }
        if (mask & Epoll.OUT && conn.out !== null) this.#flush(conn);
        if (mask & Epoll.IN) conn.readable = true;
        this.#step(conn);
      } else if (fd === this.#wakeFd) {
        lib.drainWake(fd);
      } else if (this.#listeners.includes(fd)) {
        this.#accept(fd);
      }
    }
  }

  #accept(listener: number): void {
    const lib = this.#lib;
    for (let i = 0; i < ACCEPT_BATCH; i++) {
      const fd = lib.accept(listener);
      if (fd < 0) {
        const code = -fd;
        if (code === Errno.EAGAIN) return;
        if (
          code === Errno.EMFILE || code === Errno.ENFILE || code === Errno.ENOBUFS ||
          code === Errno.ENOMEM
        ) {
          // Out of descriptors: stop watching this listener for 10 ms, then keep serving.
          lib.epollModify(this.#epfd, listener, 0);
          setTimeout(() => {
            if (this.#listeners.includes(listener)) {
              lib.epollModify(this.#epfd, listener, Epoll.IN);
            }
          }, 10);
          return;
        }
        // Errno.EINTR, or a connection reset while it waited in the queue: the next one is waiting.
        continue;
      }
      if (this.#conns.size >= this.#o.maxConnections) {
        this.#o.onRefuse();
        // A fresh socket's buffer always takes the short refusal whole.
        if (this.#o.refusal) lib.send(fd, encoder.encode(this.#o.refusal));
        lib.close(fd);
        continue;
      }
      const conn: Conn = {
        fd,
        decoder: new LineDecoder(this.#init.maxLine),
        last: performance.now(),
        lines: [],
        next: 0,
        due: false,
        out: null,
        // The request usually arrived with the connection: read it now, not a round later.
        readable: true,
        eof: false,
        closed: false,
        chunks: 0,
        pauseArmed: false,
        watched: 0,
      };
      this.#conns.set(fd, conn);
      this.#step(conn);
    }
  }

  /** Advances a connection as far as it can go now. */
  #step(conn: Conn): void {
    const init = this.#init;
    while (!conn.closed) {
      if (conn.out !== null) return this.#watch(conn); // waits for room (Epoll.OUT)
      if (conn.next < conn.lines.length) {
        if (init.delayMs > 0) {
          if (!conn.due) {
            conn.due = true;
            this.#answers.push(performance.now() + init.delayMs, conn);
          }
          return;
        }
        // No delay: every line of the chunk in one write.
        let out = "";
        while (conn.next < conn.lines.length) {
          out += answerLine(conn.lines[conn.next++], init) + "\n";
        }
        this.#write(conn, out);
        continue;
      }
      if (conn.eof) {
        // Every answer is written and the client has sent everything.
        this.#closeConn(conn);
        return;
      }
      if (!conn.readable) {
        if (conn.decoder.pending > 0 && init.pauseMs > 0 && !conn.pauseArmed) {
          // A partial request: the client may be waiting for the answer (no newline).
          conn.pauseArmed = true;
          this.#pauses.push(performance.now() + init.pauseMs, { conn, chunks: conn.chunks });
        }
        return this.#watch(conn);
      }
      this.#read(conn);
    }
  }

  /**
   * Adds the connection to the epoll set once it has to wait for its socket
   * (edge-triggered, so the add itself reports what is ready already). A
   * request that came with the connection is answered without it: in a burst
   * the add moves out of the accept phase.
   */
  #watch(conn: Conn): void {
    if (conn.closed) return;
    // Room to write matters only while bytes wait: without them, every ACK would be an event.
    const events = Epoll.IN | Epoll.ET | (conn.out !== null ? Epoll.OUT : 0);
    if (events === conn.watched) return;
    const ok = conn.watched === 0
      ? this.#lib.epollAdd(this.#epfd, conn.fd, events)
      : this.#lib.epollModify(this.#epfd, conn.fd, events);
    conn.watched = events;
    if (ok < 0) this.#closeConn(conn);
  }

  /** Reads one chunk into the connection's lines (or notes the end, or Errno.EAGAIN). */
  #read(conn: Conn): void {
    const n = this.#lib.recv(conn.fd, this.#recv);
    if (n < 0) {
      if (-n === Errno.EAGAIN || -n === Errno.EINTR) conn.readable = -n === Errno.EINTR;
      else this.#closeConn(conn);
      return;
    }
    if (n === 0) {
      conn.eof = true;
      conn.readable = false;
      const rest = conn.decoder.flush();
      conn.lines = rest === undefined || this.#aborted ? [] : [rest];
      conn.next = 0;
      return;
    }
    conn.last = performance.now();
    conn.chunks++;
    conn.lines = conn.decoder.push(this.#recv.subarray(0, n));
    conn.next = 0;
  }

  #answerDue(conn: Conn): void {
    conn.due = false;
    if (conn.closed) return;
    this.#write(conn, answerLine(conn.lines[conn.next++], this.#init) + "\n");
    this.#step(conn);
  }

  #pauseDue(conn: Conn, chunks: number): void {
    conn.pauseArmed = false;
    if (conn.closed) return;
    const idle = conn.out === null && conn.next >= conn.lines.length && !conn.eof;
    if (idle && chunks === conn.chunks && conn.decoder.pending > 0) {
      const line = conn.decoder.flush();
      if (line !== undefined) {
        conn.lines = [line];
        conn.next = 0;
      }
    }
    this.#step(conn);
  }

  #write(conn: Conn, text: string): void {
    conn.out = encoder.encode(text);
    this.#flush(conn);
  }

  /** Hands pending bytes to the kernel; what it does not take waits for Epoll.OUT. */
  #flush(conn: Conn): void {
    const out = conn.out!;
    const n = this.#lib.send(conn.fd, out);
    if (n === out.length) conn.out = null;
    else if (n >= 0) conn.out = out.subarray(n);
    else if (-n !== Errno.EAGAIN && -n !== Errno.EINTR) this.#closeConn(conn);
  }

  #closeConn(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.out = null;
    this.#conns.delete(conn.fd);
    this.#lib.close(conn.fd);
    if (this.#conns.size === 0 && this.#drained) this.#drained();
  }
}
