/**
 * The SharedArrayBuffer transports between two threads: Atomics.wait/notify,
 * Atomics.waitAsync, and both sides spinning. Control words first (request and
 * reply sequence numbers), then the message.
 *
 * @module
 */
import { TimeoutError } from "../shared/errors.ts";
import type { Spawned } from "../shared/runtime.ts";
import {
  type EchoInit,
  type EchoMeter,
  type EchoReport,
  type Link,
  type LinkOptions,
  SAB_HEADER_BYTES,
} from "./transports.ts";

const REQUEST = 0;
const REPLY = 1;
const STOP = -1;

function spinTimeout(what: string, ms: number): TimeoutError {
  return new TimeoutError(what, ms);
}

/** The echo side: answers until the measuring side stores STOP. */
export async function echoSab(init: EchoInit, meter: EchoMeter): Promise<void> {
  const ctrl = new Int32Array(init.sab!, 0, 4);
  const data = new Uint8Array(init.sab!, SAB_HEADER_BYTES, init.size);
  const local = new Uint8Array(init.size);
  const keepAlive = init.transport === "waitasync" ? setInterval(() => {}, 1000) : undefined;
  try {
    let seq = 0;
    for (;;) {
      let value = Atomics.load(ctrl, REQUEST);
      if (value === seq) {
        if (init.transport === "atomics-wait") {
          while ((value = Atomics.load(ctrl, REQUEST)) === seq) {
            if (Atomics.wait(ctrl, REQUEST, seq, init.timeoutMs) === "timed-out") {
              throw spinTimeout("echo waiting for a request", init.timeoutMs);
            }
          }
        } else if (init.transport === "waitasync") {
          while ((value = Atomics.load(ctrl, REQUEST)) === seq) {
            const result = Atomics.waitAsync(ctrl, REQUEST, seq, init.timeoutMs);
            if (result.async && (await result.value) === "timed-out") {
              throw spinTimeout("echo waiting for a request", init.timeoutMs);
            }
          }
        } else {
          let spins = 0;
          let since = 0;
          while ((value = Atomics.load(ctrl, REQUEST)) === seq) {
            if ((++spins & 0xffffff) === 0) {
              const t = performance.now();
              if (since === 0) since = t;
              else if (t - since > init.timeoutMs) {
                throw spinTimeout("echo spinning for a request", init.timeoutMs);
              }
            }
          }
        }
      }
      if (value === STOP) return;
      local.set(data);
      meter.handle(local);
      data.set(local);
      seq = value;
      Atomics.store(ctrl, REPLY, seq);
      Atomics.notify(ctrl, REPLY);
    }
  } finally {
    clearInterval(keepAlive);
  }
}

/** What {@linkcode sabLink} needs from transports.ts. */
export interface SabLinkDeps {
  finishSpawned(spawned: Spawned, timeoutMs: number): Promise<EchoReport>;
  peerEnded(spawned: Spawned, error?: unknown): Error;
}

/** The measuring side of a SharedArrayBuffer transport. */
export function sabLink(
  spawned: Spawned,
  sab: SharedArrayBuffer,
  options: LinkOptions,
  deps: SabLinkDeps,
): Link {
  const ctrl = new Int32Array(sab, 0, 4);
  const data = new Uint8Array(sab, SAB_HEADER_BYTES, options.size);
  const timeoutMs = options.timeoutMs;
  let seq = 0;
  let failure: Error | null = null;
  // Wake a waitAsync waiter so it sees the failure at once instead of at its timeout.
  const wake = () => Atomics.notify(ctrl, REPLY);
  spawned.done.then(
    () => (failure ??= deps.peerEnded(spawned), wake()),
    (error) => (failure ??= deps.peerEnded(spawned, error), wake()),
  );
  const noAnswer = () => failure ?? new TimeoutError(`an answer from ${spawned.where}`, timeoutMs);
  const post = (message: Uint8Array) => {
    if (failure) throw failure;
    data.set(message);
    seq++;
    Atomics.store(ctrl, REQUEST, seq);
    Atomics.notify(ctrl, REQUEST);
  };
  const stop = () => {
    Atomics.store(ctrl, REQUEST, STOP);
    Atomics.notify(ctrl, REQUEST);
  };
  const link: Link = {
    touch: false,
    where: spawned.where,
    abort: (error) => (failure ??= error),
    finish() {
      stop();
      return deps.finishSpawned(spawned, timeoutMs);
    },
    kill() {
      stop();
      spawned.kill();
    },
  };
  if (options.transport === "atomics-wait") {
    link.roundTripSync = (message) => {
      post(message);
      while (Atomics.load(ctrl, REPLY) !== seq) {
        if (Atomics.wait(ctrl, REPLY, seq - 1, timeoutMs) === "timed-out") throw noAnswer();
      }
      message.set(data);
      return message;
    };
  } else if (options.transport === "sab-spin") {
    link.roundTripSync = (message) => {
      post(message);
      let spins = 0;
      let since = 0;
      while (Atomics.load(ctrl, REPLY) !== seq) {
        if ((++spins & 0xffffff) === 0) {
          const t = performance.now();
          if (since === 0) since = t;
          else if (t - since > timeoutMs) throw noAnswer();
        }
      }
      message.set(data);
      return message;
    };
  } else {
    link.roundTrip = async (message) => {
      post(message);
      while (Atomics.load(ctrl, REPLY) !== seq) {
        const result = Atomics.waitAsync(ctrl, REPLY, seq - 1, timeoutMs);
        if (result.async && (await result.value) === "timed-out") throw noAnswer();
        if (failure) throw failure;
      }
      message.set(data);
      return message;
    };
  }
  return link;
}
