/**
 * The FFI connect engine: non-blocking connects issued through libc
 * (`socket(SOCK_NONBLOCK)`, `connect`, `epoll`, `getsockopt(SO_ERROR)`,
 * `getsockname`, `close`), thousands in flight in one isolate, windowed below the
 * open-file limit. It has none of `Deno.connect`'s per-call cost (~27 µs a port,
 * ~128 in flight per isolate), and gives the same states and reasons as the
 * `connect` engine (see `verdict.ts` for the shared rules and attempt schedule).
 *
 * Exactness rules:
 * - Ready events are drained before any deadline is judged, so an answer that
 *   arrived while the isolate was starved of CPU is never called `filtered`.
 * - `EMFILE`/`ENFILE`/`EADDRNOTAVAIL`/`ENOBUFS` shrink the window and retry the
 *   port; they are never a port state (an error after 30 s of nothing but them).
 * - A connect that lands on its own source address and port is `closed`
 *   (`self-connect`), compared through `getsockname`.
 *
 * Over 500 lines on purpose: the engine is one state machine (issue, drain,
 * expire, wait) over one set of descriptor tables, timers and queues; its small
 * pieces already live apart (`libc.ts`, `ffi_queues.ts`, `verdict.ts`, `timing.ts`).
 *
 * @module
 */
import { connectError } from "../shared/errors.ts";
import { Errno, type Libc, libc, type SockAddr, sockAddr } from "./libc.ts";
import {
  attemptStep,
  connectedVerdict,
  deadlineAfterAttempt,
  isExhaustedErrno,
  NO_RESPONSE,
  type Verdict,
  verdictForErrno,
} from "./verdict.ts";
import { HostRtts, type RttBounds, type RttEstimate } from "./timing.ts";
import { JobQueue, type Timer, TimerHeap } from "./ffi_queues.ts";
import { FEW_SOCKETS, MAX_FFI_WINDOW, RESOURCE_RETRY_LIMIT_MS } from "./limits.ts";

/** The verdict a refused connect gets (its socket can connect again). */
const REFUSED = verdictForErrno(Errno.ECONNREFUSED);

export { MAX_FFI_WINDOW };

/** What one batch probes: ports of hosts, as parallel arrays. */
export interface FfiBatch {
  /** Literal addresses. */
  hosts: readonly { address: string; family: 4 | 6 }[];
  /** Per probe: index into `hosts`. */
  hostOf: ArrayLike<number>;
  /** Per probe: the port. */
  ports: ArrayLike<number>;
}

/** Settings of one submitted batch. */
export interface FfiBatchOptions {
  timeoutMs: number;
  retries: number;
  /** Adaptive timeout bounds (see `timing.ts`); absent: `timeoutMs` is fixed. */
  minRttMs?: number;
  maxRttMs?: number;
  signal?: AbortSignal;
  /** Called as each probe is decided, with its index and outcome code (see `OUTCOMES`). */
  onResult?: (index: number, code: number) => void;
  /**
   * Called once, the first time the engine has nothing to start and waits (work
   * that can wait for the first wave of connects: each probe's timeout runs from
   * its own connect, so everything done before the last first connect lengthens
   * the scan).
   */
  onIdle?: () => void;
}

/** A batch's results: one outcome code (see `OUTCOMES`) and attempt count per probe. */
export interface FfiResults {
  codes: Uint8Array;
  attempts: Uint8Array;
}

interface Batch {
  hosts: SockAddr[];
  /** Round-trip estimates per host (shared by the engine's batches). */
  rtts: RttEstimate[];
  bounds: RttBounds;
  hostNames: readonly { address: string }[];
  hostOf: ArrayLike<number>;
  ports: ArrayLike<number>;
  /** Next probe not yet started. */
  cursor: number;
  codes: Uint8Array;
  attempts: Uint8Array;
  remaining: number;
  options: FfiBatchOptions;
  resolve: (results: FfiResults) => void;
  reject: (error: Error) => void;
  failed: boolean;
  /** Probes with sockets open or retries pending (closed on failure). */
  live: Set<PortJob>;
}

/** A probe that outlived its first connect call (pending, or retrying). */
interface PortJob {
  batch: Batch;
  index: number;
  /** Attempts started. */
  started: number;
  /** Descriptors open for this port. */
  fds: number[];
  deadline: number;
  /** Sequence number of the job's live timer (stale heap entries are skipped). */
  timer: number;
  lastCode: number;
  exhaustedSince: number;
  done: boolean;
  /** Waiting in the retry queue. */
  queued: boolean;
  /** When the queued retry was due (its timer's time, or the end of the last attempt). */
  due: number;
  /** When it joined the retry queue. */
  queuedAt: number;
  /** It had to wait for a descriptor or local port (then its deadline starts when it starts). */
  waited: boolean;
}

/**
 * The most time one call issues connects before answers and timers are looked at
 * again (so deadlines are judged on time while a long range is being issued).
 */
const ISSUE_SLICE_MS = 4;
/**
 * The most time between two turns of the event loop while there is work to do
 * (signals, progress, a worker's messages). Each turn is an asynchronous FFI call,
 * which costs a thread hand-off (1-3 ms on a loaded machine), so not every slice.
 */
const YIELD_EVERY_MS = 40;

/**
 * Second connects in a row that may find the first still pending before the
 * engine stops asking every time (see `FfiEngine.#askAgain`).
 */
const PENDING_STREAK = 16;

/** One engine per isolate: batches share its window and its epoll instance. */
export class FfiEngine {
  readonly #lib: Libc;
  #epfd = -1;
  #window: number;
  #maxWindow: number;
  #byLimit: number | undefined;
  #sockets = 0;
  #sinceShrink = 0;
  readonly #byFd: (PortJob | undefined)[] = [];
  /** When each open descriptor's connect started (for round-trip samples). */
  readonly #startedAt: number[] = [];
  readonly #rtts = new HostRtts();
  /** Batches with probes not yet started, oldest first. */
  readonly #fresh: Batch[] = [];
  readonly #retry = new JobQueue<PortJob>();
  readonly #timers = new TimerHeap<PortJob>();
  #seq = 0;
  #running = false;
  #rate = 0;
  #nextStart = 0;
  /** Since when nothing could start for lack of descriptors or ports (-1: not now). */
  #exhaustedSince = -1;
  /** Last time probes were left waiting because the window was full. */
  #windowFullAt = -1;
  /** Second connects in a row that found the first still pending (see `#start`). */
  #pendingStreak = 0;
  /** Probes' `onIdle` hooks not yet called. */
  readonly #idleHooks: (() => void)[] = [];
  /** A refused socket per family (IPv4, IPv6) kept for the next connect, or -1. */
  readonly #spare = [-1, -1];
  readonly #syncEvents: Uint8Array;
  readonly #syncView: DataView;
  readonly #asyncEvents: Uint8Array;
  readonly #asyncView: DataView;

  /** `window`: most sockets open at once (default: from the open-file limit). */
  constructor(window?: number) {
    this.#lib = libc();
    const size = 1024 * this.#lib.eventSize;
    this.#syncEvents = new Uint8Array(size);
    this.#syncView = new DataView(this.#syncEvents.buffer);
    this.#asyncEvents = new Uint8Array(size);
    this.#asyncView = new DataView(this.#asyncEvents.buffer);
    this.#maxWindow = this.#window = 1;
    this.setWindow(window ?? MAX_FFI_WINDOW);
  }

  /** The most sockets this engine keeps open. */
  get window(): number {
    return this.#maxWindow;
  }

  /**
   * Sets the most sockets this engine keeps open (a share of the open-file limit
   * for this isolate), never above what the limit allows. A window of a few
   * sockets never asks for the limit (a one-port scan skips binding getrlimit).
   */
  setWindow(max: number): void {
    const wanted = Math.max(1, Math.min(max, MAX_FFI_WINDOW));
    this.#maxWindow = wanted <= FEW_SOCKETS ? wanted : Math.min(wanted, this.#limitWindow());
    this.#window = Math.min(Math.max(this.#window, 1), this.#maxWindow);
    if (this.#sockets === 0) this.#window = this.#maxWindow;
  }

  /** The window the open-file limit allows (the soft limit raised to the hard one first). */
  #limitWindow(): number {
    this.#byLimit ??= (() => {
      const limit = this.#lib.openFileLimit(MAX_FFI_WINDOW + 256);
      return limit === null
        ? 1024
        : Math.max(1, limit.soft - Math.min(Math.floor(limit.soft / 2), 64));
    })();
    return this.#byLimit;
  }

  /** New connects per second across the engine (0: unlimited). */
  setRate(rate: number): void {
    this.#rate = rate;
  }

  /** Probes every port of the batch; resolves with one outcome per probe, in order. */
  scan(probes: FfiBatch, options: FfiBatchOptions): Promise<FfiResults> {
    const count = probes.ports.length;
    return new Promise((resolve, reject) => {
      const batch: Batch = {
        hosts: probes.hosts.map((host) => sockAddr(host.address, 0, host.family)),
        rtts: probes.hosts.map((host) => this.#rtts.get(host.address)),
        bounds: { initialMs: options.timeoutMs, minMs: options.minRttMs, maxMs: options.maxRttMs },
        hostNames: probes.hosts,
        hostOf: probes.hostOf,
        ports: probes.ports,
        cursor: 0,
        codes: new Uint8Array(count),
        attempts: new Uint8Array(count),
        remaining: count,
        options,
        resolve,
        reject,
        failed: false,
        live: new Set(),
      };
      if (count === 0) return resolve({ codes: batch.codes, attempts: batch.attempts });
      options.signal?.addEventListener("abort", () => {
        this.#fail(batch, options.signal!.reason ?? new Error("aborted"));
      }, { once: true });
      if (options.onIdle) this.#idleHooks.push(options.onIdle);
      this.#fresh.push(batch);
      if (!this.#running) this.#run();
    });
  }

  #settle(batch: Batch, index: number, code: number, attempts: number): void {
    if (batch.failed) return;
    batch.codes[index] = code;
    batch.attempts[index] = attempts;
    batch.options.onResult?.(index, code);
    if (--batch.remaining === 0) {
      batch.resolve({ codes: batch.codes, attempts: batch.attempts });
    }
  }

  #finish(job: PortJob, code: number): void {
    if (job.done) return;
    job.done = true;
    this.#closeAll(job);
    job.batch.live.delete(job);
    this.#settle(job.batch, job.index, code, job.started);
  }

  #fail(batch: Batch, error: Error): void {
    if (batch.failed) return;
    batch.failed = true;
    batch.cursor = batch.ports.length;
    for (const job of batch.live) {
      job.done = true;
      this.#closeAll(job);
    }
    batch.live.clear();
    batch.reject(error);
  }

  #error(batch: Batch, index: number, cause: Error): void {
    const host = batch.hostNames[batch.hostOf[index]].address;
    this.#fail(batch, connectError(host, batch.ports[index], cause));
  }

  #closeAll(job: PortJob): void {
    for (const fd of job.fds) this.#closeFd(fd);
    job.fds.length = 0;
  }

  #closeFd(fd: number): void {
    this.#byFd[fd] = undefined;
    this.#lib.close(fd);
    this.#sockets--;
  }

  #setTimer(job: PortJob, at: number, kind: Timer<PortJob>["kind"]): void {
    job.timer = ++this.#seq;
    this.#timers.push({ at, job, seq: job.timer, kind });
  }

  /** One attempt ended with `verdict` (from an event or from `connect` itself). */
  #onVerdict(job: PortJob, fd: number, verdict: Verdict): void {
    if (verdict.final) return this.#finish(job, verdict.code);
    const i = job.fds.indexOf(fd);
    if (i >= 0) job.fds.splice(i, 1);
    this.#closeFd(fd);
    job.lastCode = verdict.code;
    if (job.fds.length > 0) return;
    if (job.started <= job.batch.options.retries) {
      // Every started attempt has ended: the next one need not wait its turn.
      job.timer = ++this.#seq;
      this.#queueRetry(job, performance.now());
    } else this.#finish(job, verdict.code);
  }

  #onErrno(job: PortJob, fd: number, errno: number): void {
    const verdict = verdictForErrno(errno);
    if (verdict) return this.#onVerdict(job, fd, verdict);
    this.#error(job.batch, job.index, new Error(`os error ${errno}`));
  }

  /** The batch's address for probe `index`, its port bytes set. */
  #addressOf(batch: Batch, index: number): SockAddr {
    const address = batch.hosts[batch.hostOf[index]];
    const port = batch.ports[index];
    address.bytes[2] = port >> 8;
    address.bytes[3] = port & 0xff;
    return address;
  }

  /**
   * Starts one attempt of probe `index` (`job` null for its first): false when
   * out of descriptors or local ports (the probe waits in the retry queue).
   */
  #start(batch: Batch, index: number, job: PortJob | null, now: number): boolean {
    const lib = this.#lib;
    const address = this.#addressOf(batch, index);
    const slot = address.family === 4 ? 0 : 1;
    let fd = this.#spare[slot];
    let code: number;
    if (fd >= 0) {
      // A refused socket connects again (Linux): the first call reports the old
      // reset (ECONNABORTED) and returns it to unconnected. Anything else: a fresh one.
      this.#spare[slot] = -1;
      code = lib.connect(fd, address);
      if (code === -Errno.ECONNABORTED) code = lib.connect(fd, address);
      if (code === -Errno.ECONNABORTED || code === -Errno.EISCONN || code === -Errno.EALREADY) {
        lib.close(fd);
        fd = -1;
      }
    }
    if (fd < 0) {
      fd = lib.tcpSocket(address.family);
      code = fd < 0 ? fd : lib.connect(fd, address);
    }
    let errno = fd < 0 ? -fd : 0;
    if (fd >= 0) {
      errno = code! === 0 ? 0 : -code!;
      if (errno === Errno.EINPROGRESS && this.#askAgain()) {
        // On loopback the answer is often in before connect returns. A second
        // connect says so in one call: 0 when connected, the error when refused
        // (which also leaves the socket ready to connect again), EALREADY when
        // still pending (then epoll waits for it).
        const again = lib.connect(fd, address);
        errno = again === 0 ? 0 : again === -Errno.EALREADY ? Errno.EINPROGRESS : -again;
        this.#pendingStreak = errno === Errno.EINPROGRESS ? this.#pendingStreak + 1 : 0;
      }
      if (isExhaustedErrno(errno)) lib.close(fd);
    }
    if (isExhaustedErrno(errno)) {
      job ??= this.#newJob(batch, index);
      job.queued = true;
      job.waited = true;
      this.#retry.unshift(job);
      this.#window = Math.max(1, Math.min(this.#window, this.#sockets) - 1);
      this.#sinceShrink = 0;
      if (this.#exhaustedSince < 0) this.#exhaustedSince = now;
      else if (now - this.#exhaustedSince > RESOURCE_RETRY_LIMIT_MS) {
        this.#error(
          batch,
          index,
          new Error(`out of file descriptors or local ports for ${RESOURCE_RETRY_LIMIT_MS} ms`),
        );
      }
      return false;
    }
    this.#exhaustedSince = -1;
    if (fd < 0) {
      this.#error(batch, index, new Error(`os error ${errno}`));
      return true;
    }
    const verdict = errno === 0
      ? connectedVerdict(lib.isSelfConnect(fd, address))
      : errno === Errno.EINPROGRESS
      ? null
      : verdictForErrno(errno);
    if (verdict === null && errno !== Errno.EINPROGRESS) {
      lib.close(fd);
      this.#error(batch, index, new Error(`os error ${errno}`));
      return true;
    }
    const rtt = batch.rtts[batch.hostOf[index]];
    if (verdict) rtt.sample(performance.now() - now);
    if (job === null && verdict?.final) {
      // Decided by connect itself (most closed ports on loopback): no job, no timer;
      // a refused socket is kept to connect again (two system calls fewer a port).
      if (verdict === REFUSED && this.#spare[slot] < 0) this.#spare[slot] = fd;
      else lib.close(fd);
      this.#settle(batch, index, verdict.code, 1);
      return true;
    }
    job ??= this.#newJob(batch, index);
    this.#sockets++;
    this.#byFd[fd] = job;
    job.fds.push(fd);
    this.#startedAt[fd] = now;
    const retries = batch.options.retries;
    const timeout = rtt.timeout(batch.bounds);
    const k = job.started++;
    // A retry that started late only because the event loop was busy keeps its
    // schedule (the port's deadline is not pushed back by a late turn); one that
    // waited for a descriptor gets its share of the timeout from its start.
    const waited = job.waited || job.queuedAt <= this.#windowFullAt;
    const base = k > 0 && !waited ? Math.min(now, job.due) : now;
    job.waited = false;
    job.deadline = deadlineAfterAttempt(job.deadline, base, k, timeout, retries);
    if (job.started <= retries) this.#setTimer(job, base + attemptStep(timeout, retries), "retry");
    else this.#setTimer(job, job.deadline, "deadline");
    if (verdict) return this.#onVerdict(job, fd, verdict), true;
    const added = lib.epollAdd(this.#epollFd(), fd, fd);
    if (added < 0) this.#error(batch, index, new Error(`epoll_ctl: os error ${-added}`));
    return true;
  }

  /**
   * Whether a pending connect is asked again at once. Where answers come back
   * before `connect` returns (loopback, closed ports) the second call decides the
   * port in one system call; where they do not (dropped SYNs, real networks) it
   * only costs one, so after {@linkcode PENDING_STREAK} pending answers in a row
   * only every {@linkcode PENDING_STREAK}th connect is asked again (epoll decides
   * the others, with the same rules: only the cost differs).
   */
  #askAgain(): boolean {
    if (this.#pendingStreak < PENDING_STREAK) return true;
    if (++this.#pendingStreak % PENDING_STREAK === 0) return true;
    return false;
  }

  /** The engine's epoll instance, created when a first connect has to be waited for. */
  #epollFd(): number {
    if (this.#epfd < 0) {
      const epfd = this.#lib.epollCreate();
      if (epfd < 0) throw new Error(`epoll_create1 failed (os error ${-epfd})`);
      this.#epfd = epfd;
    }
    return this.#epfd;
  }

  #newJob(batch: Batch, index: number): PortJob {
    const job: PortJob = {
      batch,
      index,
      started: 0,
      fds: [],
      deadline: 0,
      timer: 0,
      lastCode: NO_RESPONSE.code,
      exhaustedSince: -1,
      done: false,
      queued: false,
      due: 0,
      queuedAt: 0,
      waited: false,
    };
    batch.live.add(job);
    return job;
  }

  #onEvent(fd: number): void {
    const job = this.#byFd[fd];
    if (!job || job.done) return;
    job.batch.rtts[job.batch.hostOf[job.index]].sample(performance.now() - this.#startedAt[fd]);
    const errno = this.#lib.socketError(fd);
    if (errno !== 0) return this.#onErrno(job, fd, errno);
    const address = this.#addressOf(job.batch, job.index);
    this.#onVerdict(job, fd, connectedVerdict(this.#lib.isSelfConnect(fd, address)));
  }

  #handleEvents(view: DataView, count: number): void {
    for (let i = 0; i < count; i++) this.#onEvent(this.#lib.eventData(view, i));
  }

  /** Handles every ready event now; true when there were any. */
  #drain(): boolean {
    if (this.#sockets === 0 || this.#epfd < 0) return false;
    let any = false;
    for (;;) {
      const n = this.#lib.epollPoll(this.#epfd, this.#syncEvents);
      if (n <= 0) return any;
      any = true;
      this.#handleEvents(this.#syncView, n);
      if (n * this.#lib.eventSize < this.#syncEvents.length) return any;
    }
  }

  /** Fires timers due by `now`: retries join the retry queue, deadlines decide `filtered`. */
  #expire(now: number): void {
    for (;;) {
      const timer = this.#timers.peek();
      if (!timer || timer.at > now) return;
      this.#timers.pop();
      const job = timer.job;
      if (job.done || timer.seq !== job.timer) continue;
      if (timer.kind === "retry") {
        this.#queueRetry(job, timer.at);
        // Its attempts keep their deadline while the retry waits for a socket.
        this.#setTimer(job, job.deadline, "deadline");
      } else if (job.queued) {
        // Deadline passed with the retry still waiting for a socket: free the
        // sockets of the earlier attempts; the retry gets its own share when it starts.
        this.#closeAll(job);
        job.timer = ++this.#seq;
      } else this.#finish(job, job.lastCode);
    }
  }

  /**
   * Starts attempts while the window allows, for at most {@linkcode ISSUE_SLICE_MS}
   * (connects that the kernel decides at once never fill the window: without the
   * bound one call would issue a whole range while timers and answers wait); true
   * when any started. Each start is timed on its own (deadlines, round trips).
   */
  #issue(): boolean {
    let any = false;
    const paced = this.#rate > 0;
    const until = performance.now() + ISSUE_SLICE_MS;
    for (;;) {
      const now = performance.now();
      if (now >= until) break;
      if (this.#sockets >= this.#window) {
        if (this.#waiting()) this.#windowFullAt = now;
        break;
      }
      if (paced && now < this.#nextStart) break;
      let started: boolean;
      const job = this.#retry.shift();
      if (job) {
        job.queued = false;
        if (job.done) continue;
        started = this.#start(job.batch, job.index, job, now);
      } else {
        const batch = this.#fresh[0];
        if (!batch) break;
        if (batch.cursor >= batch.ports.length) {
          this.#fresh.shift();
          continue;
        }
        started = this.#start(batch, batch.cursor++, null, now);
      }
      if (!started) break;
      any = true;
      if (paced) this.#nextStart = Math.max(now, this.#nextStart) + 1000 / this.#rate;
      if (this.#window < this.#maxWindow && ++this.#sinceShrink >= 64) {
        this.#sinceShrink = 0;
        this.#window++;
      }
    }
    return any;
  }

  #queueRetry(job: PortJob, due: number): void {
    if (job.queued) return;
    job.queued = true;
    job.due = due;
    job.queuedAt = performance.now();
    this.#retry.push(job);
  }

  /** The first live timer (stale ones are dropped). */
  #nextTimer(): Timer<PortJob> | undefined {
    for (;;) {
      const timer = this.#timers.peek();
      if (!timer || (!timer.job.done && timer.seq === timer.job.timer)) return timer;
      this.#timers.pop();
    }
  }

  #waiting(): boolean {
    return this.#retry.length > 0 || this.#fresh.length > 0;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      let lastYield = performance.now();
      // Every undecided probe has a socket open or waits in a queue.
      while (this.#sockets > 0 || this.#waiting()) {
        const issued = this.#issue();
        const answered = this.#drain();
        this.#expire(performance.now());
        const after = performance.now();
        if ((issued || answered) && after - lastYield < YIELD_EVERY_MS) continue;
        if (!issued && !answered && this.#idleHooks.length > 0) {
          // Nothing to start: the deferred work runs now, before the first wait.
          for (const hook of this.#idleHooks.splice(0)) hook();
          continue;
        }
        // Wait for an answer, the next timer or the next paced start; let the isolate run.
        let wait = 0;
        if (!issued && !answered) {
          const next = this.#nextTimer()?.at ?? after + 50;
          wait = Math.max(0, Math.min(50, Math.ceil(next - after)));
          if (this.#rate > 0 && this.#waiting()) {
            wait = Math.min(wait, Math.max(0, Math.ceil(this.#nextStart - after)));
          }
          if (this.#sockets === 0 && this.#waiting()) {
            wait = Math.max(wait, 10); // out of descriptors with nothing in flight: back off
          }
        }
        const n = await this.#lib.epollWait(this.#epollFd(), this.#asyncEvents, wait);
        lastYield = performance.now();
        if (n > 0) this.#handleEvents(this.#asyncView, n);
      }
    } finally {
      this.#running = false;
      this.#idleHooks.length = 0;
      for (const slot of [0, 1]) {
        if (this.#spare[slot] >= 0) this.#lib.close(this.#spare[slot]);
        this.#spare[slot] = -1;
      }
    }
  }
}

let engine: FfiEngine | null = null;

/**
 * The isolate's engine (one epoll instance and one window per isolate), its
 * window set to `window` (a small first window never asks for the open-file limit).
 */
export function ffiEngine(window?: number): FfiEngine {
  if (engine === null) engine = new FfiEngine(window);
  else if (window !== undefined) engine.setWindow(window);
  return engine;
}
