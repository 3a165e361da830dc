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
import { spawn, type Spawned } from "../shared/runtime.ts";
import { serviceOf } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import type { UdpBatch, WorkerEvent } from "./udp_service.ts";
import { decodeHeader, formatAddress, MAX_UDP_PAYLOAD } from "./protocol.ts";
import type { ReceiverCollector } from "./collector.ts";
import { fastUdp, sockaddrIn } from "./udp_ffi.ts";

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

async function startFastReceiver(
  hostname: string,
  port: number,
  collector: ReceiverCollector,
  entry?: string | URL,
): Promise<UdpReceiver> {
  const worker: Spawned = await spawn("thread", {
    service: serviceOf(registry, "interarrival.udp-receive"),
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
