/**
 * The FFI UDP receiver's worker side (`interarrival.udp-receive` in the
 * registry): `recvmmsg` batches with kernel timestamps, decoded and sent to the
 * serving isolate (udp.ts) as {@linkcode UdpBatch} messages.
 *
 * @module
 */
import { roundMs } from "../shared/clock.ts";
import type { Channel } from "../shared/runtime.ts";
import { decodeHeader, MAX_UDP_PAYLOAD } from "./protocol.ts";
import { BatchReceiver, fastUdp, FastUdpSocket, formatIpv4, SLOT } from "./udp_ffi.ts";

export interface UdpBatch {
  k: "batch";
  at: number[];
  len: number[];
  flow: number[];
  seq: number[];
  sent: number[];
  /** Index into the remotes named so far, per message. */
  r: number[];
  /** Remotes first seen in this batch: [index, "a.b.c.d:port"]. */
  names: [number, string][];
  invalid: number;
  drops: number;
}

export type WorkerEvent =
  | { k: "ready"; port: number }
  | { k: "error"; message: string; name: string }
  | UdpBatch;

const BATCH_MESSAGES = 4096;
const BATCH_MS = 20;

/**
 * The FFI receiver's Web Worker: binds the socket, reads datagrams in batches
 * with `recvmmsg` and sends them to the serving isolate until told to stop.
 */
export async function udpReceiveService(channel: Channel, init: unknown): Promise<void> {
  const { hostname, port } = init as { hostname: string; port: number };
  const c = fastUdp();
  let socket: FastUdpSocket;
  try {
    if (!c) throw new Error("FFI is not available in this worker");
    socket = FastUdpSocket.bind(c, hostname, port, 32 * 1024 * 1024);
  } catch (error) {
    const e = error as Error;
    channel.send({ k: "error", message: e.message, name: e.name } satisfies WorkerEvent);
    return;
  }
  let stopping = false;
  channel.listen(() => (stopping = true));
  channel.send({ k: "ready", port: socket.port } satisfies WorkerEvent);
  const receiver = new BatchReceiver(c!, socket);
  // A MessageChannel round trip yields to the event loop (for the stop message)
  // without the clamping of nested timers.
  const turn = new MessageChannel();
  let wake: () => void = () => {};
  turn.port2.onmessage = () => wake();
  const yieldTurn = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      turn.port1.postMessage(0);
    });
  const remotes = new Map<number, number>();
  let out = emptyBatch();
  let flushed = performance.now();
  const flush = () => {
    if (out.at.length > 0 || out.invalid > 0) channel.send(out);
    out = emptyBatch();
    flushed = performance.now();
  };
  try {
    while (!stopping) {
      const batch = receiver.receive();
      for (let i = 0; i < batch.count; i++) {
        const length = batch.lengths[i];
        const data = receiver.data.subarray(i * SLOT, i * SLOT + Math.min(length, SLOT));
        const header = decodeHeader(data, 0, MAX_UDP_PAYLOAD);
        if (typeof header === "string" || header.length !== length) {
          out.invalid++;
          continue;
        }
        const key = batch.hosts[i] * 65536 + batch.ports[i];
        let index = remotes.get(key);
        if (index === undefined) {
          index = remotes.size;
          // A flood of source addresses must not grow this map without end.
          if (remotes.size < 65_536) remotes.set(key, index);
          out.names.push([index, formatIpv4(batch.hosts[i], batch.ports[i])]);
        }
        const at = Number.isNaN(batch.times[i])
          ? performance.timeOrigin + performance.now()
          : batch.times[i];
        out.at.push(roundMs(at));
        out.len.push(length);
        out.flow.push(header.flow);
        out.seq.push(header.sequence);
        out.sent.push(header.sentUs / 1000);
        out.r.push(index);
      }
      out.drops = batch.drops;
      if (out.at.length >= BATCH_MESSAGES || performance.now() - flushed >= BATCH_MS) flush();
      await yieldTurn();
    }
  } finally {
    flush();
    turn.port1.close();
    turn.port2.close();
    socket.close();
  }
}

function emptyBatch(): UdpBatch {
  return {
    k: "batch",
    at: [],
    len: [],
    flow: [],
    seq: [],
    sent: [],
    r: [],
    names: [],
    invalid: 0,
    drops: -1,
  };
}
