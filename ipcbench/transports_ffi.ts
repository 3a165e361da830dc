/**
 * Transports between processes that Deno reaches only through FFI (ipc-bench's
 * set): shared memory woken by a futex, shared memory woken by eventfds,
 * shared memory with both sides spinning, and POSIX message queues. The
 * measuring side creates everything; the child copies the descriptors with
 * `pidfd_getfd` (or opens the queues by name), and the names are removed once
 * both sides hold them. Both sides block synchronously, as the C anchors do.
 *
 * @module
 */
import { TimeoutError } from "../shared/errors.ts";
import type { Spawned } from "../shared/runtime.ts";
import {
  closeFd,
  closeRegion,
  copyFd,
  createRegion,
  eventSignal,
  eventWait,
  futexWait,
  futexWake,
  mqClose,
  mqMaxMessage,
  mqOpen,
  mqReceive,
  mqSend,
  mqUnlink,
  newEventFd,
  openRegion,
  REPLY,
  REQUEST,
} from "./ffi.ts";
import type { EchoInit, EchoReport, Link, LinkOptions, Transport } from "./transports.ts";

/** The FFI transports. */
export const FFI_TRANSPORTS: ReadonlySet<Transport> = new Set([
  "shm-futex",
  "shm-eventfd",
  "shm-spin",
  "mq",
]);

/** What the child needs to reach the measuring side's resources. */
export interface FfiInit {
  pid: number;
  memfd?: number;
  /** eventfds: the measuring side signals `request`, the echo side `reply`. */
  request?: number;
  reply?: number;
  /** POSIX queue names. */
  toEcho?: string;
  fromEcho?: string;
}

const STOP = -1;

/** Why a transport cannot carry `size`-byte messages, or `null`. */
export function ffiSizeSkipReason(transport: Transport, size: number): string | null {
  const max = mqMaxMessage();
  if (transport === "mq" && size > max) {
    return `a POSIX queue message holds at most ${max} bytes here (fs.mqueue.msgsize_max)`;
  }
  return null;
}

function spinWait(ctrl: Int32Array, index: number, seen: number, timeoutMs: number): boolean {
  let spins = 0;
  let since = 0;
  while (Atomics.load(ctrl, index) === seen) {
    if ((++spins & 0xfffff) === 0) {
      const t = performance.now();
      if (since === 0) since = t;
      else if (t - since > timeoutMs) return false;
    }
  }
  return true;
}

/** The echo side: answers until the measuring side says stop (or the queue goes). */
export function echoFfi(
  init: EchoInit,
  handle: (bytes: Uint8Array) => void,
  ready: () => void,
): void {
  const ffi = init.ffi!;
  const t = init.transport;
  const timeoutMs = init.timeoutMs;
  if (t === "mq") {
    const input = mqOpen(ffi.toEcho!, init.size, false);
    const output = mqOpen(ffi.fromEcho!, init.size, false);
    const buf = new Uint8Array(init.size);
    ready();
    try {
      for (;;) {
        const n = mqReceive(input, buf, timeoutMs);
        if (n < 0) throw new TimeoutError("a request on the POSIX queue", timeoutMs);
        if (n === 0) return; // the empty message is "stop"
        handle(buf);
        mqSend(output, buf);
      }
    } finally {
      mqClose(input);
      mqClose(output);
    }
  }
  const region = openRegion(ffi.pid, ffi.memfd!, init.size);
  const request = ffi.request !== undefined ? copyFd(ffi.pid, ffi.request) : -1;
  const reply = ffi.reply !== undefined ? copyFd(ffi.pid, ffi.reply) : -1;
  const local = new Uint8Array(init.size);
  ready();
  try {
    let seq = 0;
    for (;;) {
      let ok: boolean;
      if (t === "shm-futex") ok = futexWait(region, REQUEST, seq, timeoutMs);
      else if (t === "shm-spin") ok = spinWait(region.ctrl, REQUEST, seq, timeoutMs);
      else {
        // A wake-up may be one already consumed: look at the word, not the count.
        ok = true;
        while (ok && Atomics.load(region.ctrl, REQUEST) === seq) ok = eventWait(request, timeoutMs);
      }
      if (!ok) throw new TimeoutError("a request in shared memory", timeoutMs);
      const value = Atomics.load(region.ctrl, REQUEST);
      if (value === STOP) return;
      local.set(region.data);
      handle(local);
      region.data.set(local);
      seq = value;
      Atomics.store(region.ctrl, REPLY, seq);
      if (t === "shm-futex") futexWake(region, REPLY);
      else if (t === "shm-eventfd") eventSignal(reply);
    }
  } finally {
    if (request >= 0) closeFd(request);
    if (reply >= 0) closeFd(reply);
    closeRegion(region);
  }
}

/** What {@linkcode openFfiLink} needs from transports.ts (kept there to avoid a cycle). */
export interface FfiLinkDeps {
  startEcho(options: LinkOptions, extra: Partial<EchoInit>): Promise<Spawned>;
  finishSpawned(spawned: Spawned, timeoutMs: number): Promise<EchoReport>;
  peerEnded(spawned: Spawned, error?: unknown): Error;
}

/** Starts the echo child of an FFI transport and returns the measuring side's link. */
export async function openFfiLink(options: LinkOptions, deps: FfiLinkDeps): Promise<Link> {
  const t = options.transport;
  const timeoutMs = options.timeoutMs;
  if (t === "mq") return await mqLink(options, deps);
  const region = createRegion(options.size);
  const request = t === "shm-eventfd" ? newEventFd() : -1;
  const reply = t === "shm-eventfd" ? newEventFd() : -1;
  const release = () => {
    if (request >= 0) closeFd(request);
    if (reply >= 0) closeFd(reply);
    closeRegion(region);
  };
  let spawned: Spawned;
  try {
    spawned = await deps.startEcho(options, {
      ffi: {
        pid: Deno.pid,
        memfd: region.fd,
        ...(request >= 0 ? { request, reply } : {}),
      },
    });
  } catch (error) {
    release();
    throw error;
  }
  let failure: Error | null = null;
  spawned.done.then(
    () => (failure ??= deps.peerEnded(spawned)),
    (error) => (failure ??= deps.peerEnded(spawned, error)),
  );
  let seq = 0;
  const noAnswer = () => failure ?? new TimeoutError(`an answer from ${spawned.where}`, timeoutMs);
  const stop = () => {
    Atomics.store(region.ctrl, REQUEST, STOP);
    if (t === "shm-futex") futexWake(region, REQUEST);
    else if (t === "shm-eventfd") eventSignal(request);
  };
  let released = false;
  const once = () => {
    if (!released) {
      released = true;
      release();
    }
  };
  return {
    touch: false,
    where: spawned.where,
    roundTripSync(message) {
      if (failure) throw failure;
      region.data.set(message);
      seq++;
      Atomics.store(region.ctrl, REQUEST, seq);
      let ok: boolean;
      if (t === "shm-futex") {
        futexWake(region, REQUEST);
        ok = futexWait(region, REPLY, seq - 1, timeoutMs);
      } else if (t === "shm-eventfd") {
        eventSignal(request);
        ok = true;
        while (ok && Atomics.load(region.ctrl, REPLY) !== seq) ok = eventWait(reply, timeoutMs);
      } else ok = spinWait(region.ctrl, REPLY, seq - 1, timeoutMs);
      if (!ok || Atomics.load(region.ctrl, REPLY) !== seq) throw noAnswer();
      message.set(region.data);
      return message;
    },
    abort: (error) => (failure ??= error),
    async finish() {
      stop();
      try {
        return await deps.finishSpawned(spawned, timeoutMs);
      } finally {
        once();
      }
    },
    kill() {
      stop();
      spawned.kill();
      spawned.done.catch(() => {}).finally(once);
    },
  };
}

let queueCount = 0;

async function mqLink(options: LinkOptions, deps: FfiLinkDeps): Promise<Link> {
  const base = `/ipcbench-${Deno.pid}-${++queueCount}`;
  const names = { toEcho: `${base}-a`, fromEcho: `${base}-b` };
  const output = mqOpen(names.toEcho, options.size, true);
  let input: number;
  try {
    input = mqOpen(names.fromEcho, options.size, true);
  } catch (error) {
    mqClose(output, names.toEcho);
    throw error;
  }
  let spawned: Spawned;
  try {
    spawned = await deps.startEcho(options, { ffi: { pid: Deno.pid, ...names } });
  } catch (error) {
    mqClose(output, names.toEcho);
    mqClose(input, names.fromEcho);
    throw error;
  }
  // The echo opened both queues before it said ready: the names can go.
  mqUnlink(names.toEcho);
  mqUnlink(names.fromEcho);
  let failure: Error | null = null;
  spawned.done.then(
    () => (failure ??= deps.peerEnded(spawned)),
    (error) => (failure ??= deps.peerEnded(spawned, error)),
  );
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      mqSend(output, new Uint8Array(0));
    } catch {
      // The echo is gone.
    }
    mqClose(output);
    mqClose(input);
  };
  return {
    touch: false,
    where: spawned.where,
    roundTripSync(message) {
      if (failure) throw failure;
      mqSend(output, message);
      const n = mqReceive(input, message, options.timeoutMs);
      if (n !== message.length) {
        throw failure ??
          (n < 0
            ? new TimeoutError(`an answer from ${spawned.where}`, options.timeoutMs)
            : new Error(`a ${n}-byte message where ${message.length} were sent`));
      }
      return message;
    },
    abort: (error) => (failure ??= error),
    finish() {
      close();
      return deps.finishSpawned(spawned, options.timeoutMs);
    },
    kill() {
      close();
      spawned.kill();
    },
  };
}
