/**
 * The load generator's FFI engine for one-request clients (the study's
 * clients: connect, send one request, wait for its answer, close), on libc
 * sockets (`ffi_libc.ts`). Thousands of non-blocking connects are in flight in
 * one isolate and one `epoll_wait` reports a batch of them; `Deno.connect`
 * stalls above ~128 connects in flight per isolate and costs async ops per
 * connect, write, read and close, which made the 10,000-client burst need four
 * generator workers and most of the machine's CPU.
 *
 * It records exactly what `load_connection.ts` records for these clients (same
 * counters, histograms, timeline, errors, retries of a failed connect, timeouts)
 * into the same {@linkcode LoadGenerator}, so the report does not depend on the
 * engine. {@linkcode ffiBurstUnavailable} says when it cannot run.
 *
 * @module
 */
import { concatAll } from "../shared/codec.ts";
import { errorMessage } from "../shared/errors.ts";
import {
  Epoll,
  EpollPump,
  Errno,
  ffiEngineUnavailable,
  ffiLibc,
  sockaddrIn,
  socketError,
} from "./ffi_libc.ts";
import type { LoadGenerator } from "./load_engine.ts";
import { MAX_REPLY, NEWLINE, RECONNECT_MS, startsWithError } from "./load_connection.ts";
import { expectedReply, type LoadPlan, requestText } from "./load_plan.ts";

const MAX_CONNECT_FAILURES = 3;
/** Connects started per round of the loop (between two looks at the sockets). */
const CONNECT_BATCH = 256;
const EVENTS = 1024;
const SWEEP_MS = 100;

const IDLE = 0;
const CONNECTING = 1;
const WAITING = 2;
const DONE = 3;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why a plan cannot run on the FFI burst engine, or null when it can. */
export function ffiBurstUnavailable(plan: LoadPlan): string | null {
  if (
    plan.requestsPerConnection !== 1 || plan.rate !== null || plan.durationMs !== null ||
    plan.requests !== null || plan.warmupMs !== 0
  ) {
    return "the FFI generator runs one-request clients (--requests-per-connection 1, " +
      "closed loop, no --duration, --requests or --warmup)";
  }
  return ffiEngineUnavailable(plan.host);
}

/**
 * Runs the share's one-request clients to their end (or the generator's stop),
 * recording into `gen`. `gen.t0` and `gen.measureStart` are set by the caller.
 */
export async function runFfiBurst(gen: LoadGenerator): Promise<void> {
  const lib = ffiLibc();
  const plan = gen.plan;
  const ids = plan.connectionIds;
  const count = ids.length;
  const address = sockaddrIn(plan.host, plan.port);
  const target = `${plan.host}:${plan.port}`;
  const raw = plan.framing === "raw";
  const fds = new Int32Array(count).fill(-1);
  const phase = new Uint8Array(count);
  const failures = new Uint8Array(count);
  const began = new Float64Array(count);
  const sentAt = new Float64Array(count);
  const expect: (string | null)[] = plan.verify ? new Array(count).fill(null) : [];
  const partial = new Map<number, Uint8Array[]>();
  const byFd = new Map<number, number>();
  const retries: { at: number; index: number }[] = [];
  const recvBuffer = new Uint8Array(2048);
  const epfd = lib.epollCreate();
  if (epfd < 0) throw socketError(-epfd);
  const pump = new EpollPump(lib, epfd, EVENTS);
  const view = pump.view;
  let nextToOpen = 0;
  let finished = 0;

  const closeSocket = (index: number) => {
    const fd = fds[index];
    if (fd < 0) return;
    fds[index] = -1;
    byFd.delete(fd);
    lib.close(fd);
  };
  const done = (index: number) => {
    closeSocket(index);
    phase[index] = DONE;
    partial.delete(index);
    finished++;
  };
  /** A connect that failed: retried after 200 ms, up to three failures in a row. */
  const connectFailed = (index: number, message: string) => {
    closeSocket(index);
    gen.connectErrors++;
    gen.noteError(`Cannot connect to ${target}: ${message}`);
    if (++failures[index] >= MAX_CONNECT_FAILURES || gen.stopped) done(index);
    else {
      phase[index] = IDLE;
      retries.push({ at: performance.now() + RECONNECT_MS, index });
    }
  };
  /** The request in flight got no answer. */
  const requestFailed = (index: number, reason: string) => {
    const now = performance.now();
    gen.failed++;
    gen.second(now).errors++;
    gen.lastEventAt = now;
    gen.noteError(reason);
    done(index);
  };
  const open = (index: number) => {
    began[index] = performance.now();
    const fd = lib.tcpSocket();
    if (fd < 0) return connectFailed(index, errorMessage(socketError(-fd)));
    fds[index] = fd;
    byFd.set(fd, index);
    phase[index] = CONNECTING;
    const started = lib.connect(fd, address);
    if (started < 0 && -started !== Errno.EINPROGRESS) {
      return connectFailed(index, errorMessage(socketError(-started)));
    }
    // On loopback the handshake is usually over when connect returns: send at once
    // (a socket still connecting refuses with EAGAIN, and epoll reports when it is done).
    if (!gen.stopped) connected(index, started === 0);
    // Edge-triggered: connected (OUT, only if still connecting), then the answer (IN).
    const events = Epoll.IN | Epoll.ET | (phase[index] === CONNECTING ? Epoll.OUT : 0);
    const added = fds[index] < 0 ? 0 : lib.epollAdd(epfd, fd, events);
    if (added < 0) connectFailed(index, errorMessage(socketError(-added)));
  };
  /**
   * Sends the request if the connection is up; false (nothing done) if it is
   * still connecting and `sure` is false.
   */
  const connected = (index: number, sure: boolean): boolean => {
    const text = requestText(plan, 0, ids[index]);
    const bytes = encoder.encode(raw ? text : text + "\n");
    const n = lib.send(fds[index], bytes);
    if (n < 0 && !sure) {
      if (n === -Errno.EAGAIN) return false;
      // Refused or reset while connecting: nothing was sent.
      connectFailed(index, errorMessage(socketError(-n)));
      return true;
    }
    const now = performance.now();
    failures[index] = 0;
    gen.connect.record((now - began[index]) * 1000);
    if (plan.verify) expect[index] = expectedReply(plan, text);
    phase[index] = WAITING;
    sentAt[index] = now;
    gen.tickets--;
    gen.sent++;
    gen.lag.record(0);
    gen.second(now).sent++;
    // A fresh socket's buffer takes one short request whole; a failure shows on the read side.
    if (n >= 0 && n < bytes.length) requestFailed(index, "the request did not fit the socket");
    return true;
  };
  const answered = (index: number, answer: Uint8Array) => {
    const now = performance.now();
    const us = (now - sentAt[index]) * 1000;
    const isError = plan.verify
      ? decoder.decode(answer) !== expect[index]
      : startsWithError(answer, 0, answer.length);
    // Sent as soon as connected: due and sent are the same moment.
    gen.recordAnswer(now, us, us, isError);
    done(index);
  };
  const read = (index: number) => {
    const fd = fds[index];
    for (;;) {
      const n = lib.recv(fd, recvBuffer);
      if (n < 0) {
        if (-n === Errno.EINTR) continue;
        if (-n !== Errno.EAGAIN) {
          requestFailed(index, `connection failed: ${errorMessage(socketError(-n))}`);
        }
        return;
      }
      if (n === 0) return requestFailed(index, "the server closed the connection");
      const chunk = recvBuffer.subarray(0, n);
      const nl = raw ? n : chunk.indexOf(NEWLINE);
      const pieces = partial.get(index);
      if (nl === -1) {
        // Part of an answer: kept until its newline.
        const kept = pieces ?? [];
        kept.push(chunk.slice());
        partial.set(index, kept);
        if (kept.reduce((s, p) => s + p.length, 0) > MAX_REPLY) {
          return requestFailed(index, `an answer longer than ${MAX_REPLY} bytes`);
        }
        continue;
      }
      const piece = chunk.subarray(0, nl);
      return answered(index, pieces ? concatAll([...pieces, piece]) : piece);
    }
  };
  const handle = (n: number) => {
    for (let i = 0; i < n; i++) {
      const index = byFd.get(lib.readyFd(view, i));
      if (index === undefined) continue;
      const mask = lib.eventMask(view, i);
      if (phase[index] === CONNECTING) {
        if (!(mask & (Epoll.OUT | Epoll.ERR | Epoll.HUP))) continue;
        const error = lib.socketError(fds[index]);
        if (error !== 0) {
          connectFailed(index, errorMessage(socketError(error)));
          continue;
        }
        if (gen.stopped) {
          done(index);
          continue;
        }
        connected(index, true);
      }
      if (phase[index] === WAITING && mask & (Epoll.IN | Epoll.ERR | Epoll.HUP)) read(index);
    }
  };
  const sweep = setInterval(() => {
    const now = performance.now();
    for (let index = 0; index < nextToOpen; index++) {
      if (phase[index] === CONNECTING && now - began[index] > plan.timeoutMs) {
        connectFailed(index, `no connection within ${plan.timeoutMs} ms`);
      } else if (phase[index] === WAITING && now - sentAt[index] > plan.timeoutMs) {
        requestFailed(index, `no answer within ${plan.timeoutMs} ms`);
      }
    }
  }, SWEEP_MS);
  try {
    while (finished < count && !gen.stopped) {
      const now = performance.now();
      while (retries.length > 0 && retries[0].at <= now) open(retries.shift()!.index);
      const end = Math.min(count, nextToOpen + CONNECT_BATCH);
      while (nextToOpen < end) open(nextToOpen++);
      // Wait only when nothing is left to open now.
      const wait = nextToOpen < count
        ? 0
        : retries.length > 0
        ? Math.max(1, Math.ceil(retries[0].at - now))
        : SWEEP_MS;
      handle(await pump.wait(wait, Math.min(1, wait)));
    }
  } finally {
    clearInterval(sweep);
    if (gen.stopped) {
      // The run was stopped: requests in flight are unanswered.
      for (let index = 0; index < count; index++) if (phase[index] === WAITING) gen.unanswered++;
    }
    for (let index = 0; index < count; index++) closeSocket(index);
    lib.close(epfd);
  }
}
