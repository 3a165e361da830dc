/**
 * Links that need no shared memory or socket of their own: the in-process
 * baseline, the runtime's channel (Worker postMessage, or a child's channel of
 * any kind), and a MessagePort.
 *
 * @module
 */
import type { Spawned } from "../shared/runtime.ts";
import {
  echoInit,
  EchoMeter,
  type EchoReport,
  type Link,
  type LinkOptions,
  TRANSPORTS,
} from "./transports.ts";

/** What {@linkcode channelLink} needs from transports.ts. */
export interface ChannelLinkDeps {
  finishSpawned(spawned: Spawned, timeoutMs: number): Promise<EchoReport>;
  peerEnded(spawned: Spawned, error?: unknown): Error;
}

/** The in-process baseline: two async functions on one event loop. */
export function asyncLink(options: LinkOptions): Link {
  let toEcho: ((m: Uint8Array | null) => void) | null = null;
  const init = echoInit(options);
  const meter = new EchoMeter(init);
  let reply: ((m: Uint8Array) => void) | null = null;
  const echoLoop = (async () => {
    for (;;) {
      const message = await new Promise<Uint8Array | null>((resolve) => (toEcho = resolve));
      if (message === null) return;
      meter.handle(message);
      const r = reply!;
      reply = null;
      r(message);
    }
  })();
  return {
    touch: true,
    where: "an async function in this isolate",
    roundTrip(message) {
      return new Promise((resolve) => {
        reply = resolve;
        const send = toEcho!;
        toEcho = null;
        send(message);
      });
    },
    abort() {},
    async finish() {
      toEcho?.(null);
      await echoLoop;
      // Both ends share one thread: the echo CPU is already in the measuring side's.
      return null;
    },
    kill() {
      toEcho?.(null);
    },
  };
}

/** Links over the runtime's channel: Worker postMessage, or a child's pipes. */
export function channelLink(
  spawned: Spawned,
  options: LinkOptions,
  deps: ChannelLinkDeps,
): Link {
  let pending: { resolve: (m: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  let failure: Error | null = null;
  let finishing = false;
  const abort = (error: Error) => {
    failure ??= error;
    const p = pending;
    pending = null;
    p?.reject(failure);
  };
  spawned.channel.listen((message) => {
    const p = pending;
    pending = null;
    p?.resolve(message.bytes ?? new Uint8Array(0));
  });
  spawned.done.then(
    () => finishing || abort(deps.peerEnded(spawned)),
    (error) => abort(deps.peerEnded(spawned, error)),
  );
  const transfer = TRANSPORTS[options.transport].kind === "thread";
  return {
    touch: transfer,
    where: spawned.where,
    channel: spawned.channelKind &&
      `${spawned.channelKind}${spawned.channelNote ? ` (${spawned.channelNote})` : ""}`,
    roundTrip(message) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
        spawned.channel.send(null, message, transfer);
      });
    },
    abort,
    finish() {
      finishing = true;
      spawned.end();
      return deps.finishSpawned(spawned, options.timeoutMs);
    },
    kill: () => spawned.kill(),
  };
}

/** A MessagePort end (used by the measuring worker of `messagechannel`). */
export function portLink(port: MessagePort, where: string): Link {
  let pending: { resolve: (m: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  let failure: Error | null = null;
  const abort = (error: Error) => {
    failure ??= error;
    const p = pending;
    pending = null;
    p?.reject(failure);
  };
  port.onmessage = (event: MessageEvent<ArrayBuffer>) => {
    const p = pending;
    pending = null;
    p?.resolve(new Uint8Array(event.data));
  };
  return {
    touch: true,
    where,
    roundTrip(message) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
        const buffer = message.buffer as ArrayBuffer;
        port.postMessage(buffer, [buffer]);
      });
    },
    abort,
    finish() {
      port.postMessage("end");
      port.close();
      return Promise.resolve(null);
    },
    kill() {
      port.close();
    },
  };
}
