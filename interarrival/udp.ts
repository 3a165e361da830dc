/**
 * UDP reception, one message per datagram, each timestamped where it arrives
 * and handed to the collector; datagrams without a valid header are counted and
 * dropped. Two engines with the same results: `recvmmsg` through FFI in a Web
 * Worker with kernel timestamps (Linux, IPv4, `--allow-ffi`), else
 * `Deno.listenDatagram` in the serving isolate.
 *
 * @module
 */
import { roundMs } from "../shared/clock.ts";
import { type Channel, defineService, spawn, type Spawned } from "../shared/runtime.ts";
import { decodeHeader, formatAddress, MAX_UDP_PAYLOAD } from "./protocol.ts";
import type { ReceiverCollector } from "./collector.ts";
import { BatchReceiver, fastUdp, FastUdpSocket, formatIpv4, SLOT, sockaddrIn } from "./udp_ffi.ts";

/** A bound UDP receiver. */
export interface UdpReceiver {
  hostname: string;
  port: number;
  /** Which engine reads the socket. */
  engine: "recvmmsg (FFI)" | "Deno.listenDatagram";
  /** Datagrams the kernel dropped for a full socket buffer (FFI engine), else null. */
  kernelDrops(): number | null;
  /** Stops reading and closes the socket; resolves when the read loop has ended. */
  close(): Promise<void>;
}

function listenError(hostname: string, port: number, error: unknown): Error {
  const inUse = error instanceof Deno.errors.AddrInUse ||
    (error instanceof Error && error.name === "AddrInUse");
  const why = inUse
    ? "address already in use (another program has this UDP port; pick another with --port)"
    : error instanceof Error
    ? error.message
    : String(error);
  return new Error(`Cannot listen on ${formatAddress({ hostname, port })}/udp: ${why}`);
}

/**
 * Binds `hostname:port` and feeds every datagram to `collector` until closed.
 * Throws `Cannot listen on HOST:PORT/udp: ...` when the port is taken.
 */
export async function startUdpReceiver(
  hostname: string,
  port: number,
  collector: ReceiverCollector,
  entry?: string | URL,
  engine: "auto" | "deno" = "auto",
): Promise<UdpReceiver> {
  if (engine === "auto" && fastUdp() && sockaddrIn(hostname, port)) {
    return await startFastReceiver(hostname, port, collector, entry);
  }
  return startDenoReceiver(hostname, port, collector);
}

function startDenoReceiver(
  hostname: string,
  port: number,
  collector: ReceiverCollector,
): UdpReceiver {
  let socket: Deno.DatagramConn;
  try {
    socket = Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (error) {
    throw listenError(hostname, port, error);
  }
  const local = socket.addr as Deno.NetAddr;
  const remotes = new Map<string, string>();
  const loop = (async () => {
    const buffer = new Uint8Array(MAX_UDP_PAYLOAD + 1);
    for (;;) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await socket.receive(buffer);
      } catch {
        return; // Closed.
      }
      const at = roundMs(performance.timeOrigin + performance.now());
      const [data, addr] = received;
      const net = addr as Deno.NetAddr;
      const key = `${net.hostname}|${net.port}`;
      let remote = remotes.get(key);
      if (remote === undefined) {
        remote = formatAddress(net);
        // Senders are few; a flood of source ports must not grow this map without end.
        if (remotes.size < 65_536) remotes.set(key, remote);
      }
      const header = decodeHeader(data, 0, MAX_UDP_PAYLOAD);
      if (typeof header === "string" || header.length !== data.length) {
        collector.udpInvalid++;
        continue;
      }
      collector.addDatagram(
        remote,
        at,
        data.length,
        header.flow,
        header.sequence,
        header.sentUs / 1000,
      );
    }
  })();
  return {
    hostname: local.hostname,
    port: local.port,
    engine: "Deno.listenDatagram",
    kernelDrops: () => null,
    async close() {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
      await loop;
    },
  };
}

// ---------------------------------------------------------------------------
// The FFI engine: a Web Worker blocks in recvmmsg and posts batches.

interface UdpBatch {
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

type WorkerEvent =
  | { k: "ready"; port: number }
  | { k: "error"; message: string; name: string }
  | UdpBatch;

const BATCH_MESSAGES = 4096;
const BATCH_MS = 20;

defineService("interarrival.udp-receive", async (channel: Channel, init: unknown) => {
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
});

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

async function startFastReceiver(
  hostname: string,
  port: number,
  collector: ReceiverCollector,
  entry?: string | URL,
): Promise<UdpReceiver> {
  const worker: Spawned = await spawn("thread", {
    service: "interarrival.udp-receive",
    init: { hostname, port },
    entry,
  });
  const first = await worker.channel.receive();
  const event = first?.data as WorkerEvent | undefined;
  if (!event || event.k !== "ready") {
    worker.kill();
    const error = new Error(event?.k === "error" ? event.message : "the UDP worker ended");
    if (event?.k === "error") error.name = event.name;
    throw listenError(hostname, port, error);
  }
  const names: string[] = [];
  // The kernel reports drops only once there are some.
  let drops = 0;
  worker.channel.listen(({ data }) => {
    const batch = data as UdpBatch;
    for (const [index, name] of batch.names) names[index] = name;
    for (let i = 0; i < batch.at.length; i++) {
      collector.addDatagram(
        names[batch.r[i]],
        batch.at[i],
        batch.len[i],
        batch.flow[i],
        batch.seq[i],
        batch.sent[i],
      );
    }
    collector.udpInvalid += batch.invalid;
    if (batch.drops >= 0) drops = batch.drops;
  });
  return {
    hostname,
    port: event.port,
    engine: "recvmmsg (FFI)",
    kernelDrops: () => drops,
    async close() {
      worker.channel.send({ k: "stop" });
      const timer = setTimeout(() => worker.kill(), 5000);
      await worker.done.catch(() => {});
      clearTimeout(timer);
    },
  };
}
