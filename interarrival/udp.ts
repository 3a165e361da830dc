/**
 * UDP reception: one socket in the serving isolate, one message per datagram,
 * each timestamped where it is read and handed to the collector. Datagrams
 * without a valid header are counted and dropped.
 *
 * @module
 */
import { roundMs } from "../shared/clock.ts";
import { decodeHeader, formatAddress, MAX_UDP_PAYLOAD } from "./protocol.ts";
import type { ReceiverCollector } from "./collector.ts";

/** A bound UDP receiver. */
export interface UdpReceiver {
  hostname: string;
  port: number;
  /** Stops reading and closes the socket; resolves when the read loop has ended. */
  close(): Promise<void>;
}

/**
 * Binds `hostname:port` and feeds every datagram to `collector` until closed.
 * Throws `Cannot listen on HOST:PORT: ...` when the port is taken.
 */
export function startUdpReceiver(
  hostname: string,
  port: number,
  collector: ReceiverCollector,
): UdpReceiver {
  let socket: Deno.DatagramConn;
  try {
    socket = Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (error) {
    const why = error instanceof Deno.errors.AddrInUse
      ? "address already in use (another program has this UDP port; pick another with --port)"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new Error(`Cannot listen on ${formatAddress({ hostname, port })}/udp: ${why}`);
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
