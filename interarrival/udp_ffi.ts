/**
 * The fast UDP path, through libc by FFI (Linux, 64-bit, IPv4, `--allow-ffi`):
 * the receiver takes up to 64 datagrams per `recvmmsg` call with the kernel's
 * receive timestamp of each (`SO_TIMESTAMPNS`) and its drop counter
 * (`SO_RXQ_OVFL`), on a socket with a 32 MiB buffer; the sender hands the
 * datagrams due together to one `sendmmsg` call (about half the cost of a
 * `sendto` each). Deno's own datagram API costs an async op per datagram and
 * falls behind near 50,000 datagrams/s; callers fall back to it where this path
 * is unavailable, with the same results.
 *
 * @module
 */

import { AF_INET, errno, fastLibc, type Libc, setInt, sockaddrIn, SOL_SOCKET } from "./libc.ts";

export { sockaddrIn };

const SOCK_DGRAM = 2;
const SO_RCVBUF = 8;
const SO_SNDBUF = 7;
const SO_RCVTIMEO = 20;
const SO_TIMESTAMPNS = 35;
const SO_RCVBUFFORCE = 33;
const SO_SNDBUFFORCE = 32;
const SO_RXQ_OVFL = 40;
const MSG_WAITFORONE = 0x10000;
const EADDRINUSE = 98;

/** libc through FFI, or null where the fast path cannot run (then use Deno's API). */
export const fastUdp: () => Libc | null = fastLibc;

/** A UDP socket opened through libc. */
export class FastUdpSocket {
  private constructor(private readonly c: Libc, readonly fd: number) {}

  /** Opens a socket bound to `hostname:port` (IPv4); throws naming the address if it cannot. */
  static bind(c: Libc, hostname: string, port: number, bufferBytes: number): FastUdpSocket {
    const address = sockaddrIn(hostname, port);
    if (!address) throw new Error(`not an IPv4 address: ${hostname}`);
    const fd = c.socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) throw new Error(`socket() failed (errno ${errno(c)})`);
    const socket = new FastUdpSocket(c, fd);
    // Root may exceed net.core.rmem_max (FORCE); others get what the limit allows.
    if (!setInt(c, fd, SO_RCVBUFFORCE, bufferBytes)) setInt(c, fd, SO_RCVBUF, bufferBytes);
    if (!setInt(c, fd, SO_SNDBUFFORCE, bufferBytes)) setInt(c, fd, SO_SNDBUF, bufferBytes);
    if (c.bind(fd, address, 16) !== 0) {
      const code = errno(c);
      socket.close();
      const why = code === EADDRINUSE ? "address already in use" : `bind failed (errno ${code})`;
      const error = new Error(why);
      error.name = code === EADDRINUSE ? "AddrInUse" : "Error";
      throw error;
    }
    return socket;
  }

  /** The bound port. */
  get port(): number {
    const address = new Uint8Array(16);
    const length = new Uint32Array([16]);
    this.c.getsockname(this.fd, address, length);
    return new DataView(address.buffer).getUint16(2);
  }

  /** Sends one datagram; false when the kernel refused it (no receiver, filtered, full). */
  sendTo(bytes: Uint8Array, address: Uint8Array): boolean {
    return Number(this.c.sendto(this.fd, bytes, BigInt(bytes.length), 0, address, 16)) >= 0;
  }

  close(): void {
    this.c.close(this.fd);
  }

  /** The libc bindings this socket uses. */
  get c_(): Libc {
    return this.c;
  }
}

/** Sends many datagrams to one destination per `sendmmsg` call. */
export class BatchSender {
  #headers = new Uint8Array(BATCH_SEND * MMSGHDR);
  #view = new DataView(this.#headers.buffer);
  #iov = new BigUint64Array(BATCH_SEND * 2);

  constructor(private readonly socket: FastUdpSocket, private readonly address: Uint8Array) {
    const pointer = (a: Uint8Array | BigUint64Array) =>
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a as Uint8Array)));
    const name = pointer(address), iov = pointer(this.#iov);
    for (let i = 0; i < BATCH_SEND; i++) {
      const h = i * MMSGHDR;
      this.#view.setBigUint64(h, name, true);
      this.#view.setUint32(h + 8, 16, true);
      this.#view.setBigUint64(h + 16, iov + BigInt(i * 16), true);
      this.#view.setBigUint64(h + 24, 1n, true);
    }
  }

  /**
   * Sends `bytes`, the concatenation of datagrams of `sizes` bytes; returns how
   * many the kernel refused (no receiver, filtered, buffer full).
   */
  send(bytes: Uint8Array, sizes: number[]): number {
    const c = this.socket.c_;
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    let refused = 0;
    let next = 0, offset = 0;
    while (next < sizes.length) {
      const n = Math.min(BATCH_SEND, sizes.length - next);
      let o = offset;
      for (let i = 0; i < n; i++) {
        this.#iov[i * 2] = base + BigInt(o);
        this.#iov[i * 2 + 1] = BigInt(sizes[next + i]);
        o += sizes[next + i];
      }
      const sent = c.sendmmsg(this.socket.fd, this.#headers, n, 0);
      // sendmmsg stops at the first datagram it cannot send: count it and go on after it.
      const done = sent > 0 ? sent : 1;
      if (sent <= 0) refused++;
      for (let i = 0; i < done; i++) offset += sizes[next + i];
      next += done;
    }
    return refused;
  }
}

const BATCH_SEND = 64;

/** Datagrams read by one {@linkcode BatchReceiver.receive} call. */
export interface ReceivedBatch {
  count: number;
  /** Payload of datagram i: `data.subarray(i * SLOT, i * SLOT + lengths[i])`. */
  lengths: Uint32Array;
  /** Kernel receive time of datagram i, epoch ms (NaN if the kernel gave none). */
  times: Float64Array;
  /** Sender of datagram i as IPv4 (network order u32) and port. */
  hosts: Uint32Array;
  ports: Uint16Array;
  /** Datagrams the kernel dropped on this socket so far (full buffer), or -1 if unknown. */
  drops: number;
}

/** Bytes reserved per datagram: the largest UDP payload fits. */
export const SLOT = 65_536;
const NAME = 16;
const CONTROL = 64;
const MMSGHDR = 64;

/** Receives datagrams in batches with `recvmmsg`, each with its kernel timestamp. */
export class BatchReceiver {
  readonly data: Uint8Array;
  #names: Uint8Array;
  #control: Uint8Array;
  #headers: Uint8Array;
  #headerView: DataView;
  #iov: BigUint64Array;
  #batch: ReceivedBatch;

  constructor(
    private readonly c: Libc,
    private readonly socket: FastUdpSocket,
    readonly size = 64,
    timeoutMs = 20,
  ) {
    setInt(c, socket.fd, SO_TIMESTAMPNS, 1);
    setInt(c, socket.fd, SO_RXQ_OVFL, 1);
    const timeout = new BigInt64Array([0n, BigInt(timeoutMs * 1000)]);
    c.setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, timeout, 16);
    this.data = new Uint8Array(size * SLOT);
    this.#names = new Uint8Array(size * NAME);
    this.#control = new Uint8Array(size * CONTROL);
    this.#headers = new Uint8Array(size * MMSGHDR);
    this.#headerView = new DataView(this.#headers.buffer);
    this.#iov = new BigUint64Array(size * 2);
    const address = (a: Uint8Array | BigUint64Array) =>
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a as Uint8Array)));
    const data = address(this.data), names = address(this.#names);
    const control = address(this.#control), iov = address(this.#iov);
    for (let i = 0; i < size; i++) {
      this.#iov[i * 2] = data + BigInt(i * SLOT);
      this.#iov[i * 2 + 1] = BigInt(SLOT);
      const h = i * MMSGHDR;
      // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags; then msg_len.
      this.#headerView.setBigUint64(h, names + BigInt(i * NAME), true);
      this.#headerView.setBigUint64(h + 16, iov + BigInt(i * 16), true);
      this.#headerView.setBigUint64(h + 24, 1n, true);
      this.#headerView.setBigUint64(h + 32, control + BigInt(i * CONTROL), true);
    }
    this.#batch = {
      count: 0,
      lengths: new Uint32Array(size),
      times: new Float64Array(size),
      hosts: new Uint32Array(size),
      ports: new Uint16Array(size),
      drops: -1,
    };
  }

  /** Waits up to the timeout for datagrams; returns those that came (count 0 on timeout). */
  receive(): ReceivedBatch {
    const view = this.#headerView;
    for (let i = 0; i < this.size; i++) {
      const h = i * MMSGHDR;
      view.setUint32(h + 8, NAME, true);
      view.setBigUint64(h + 40, BigInt(CONTROL), true);
    }
    const n = this.c.recvmmsg(this.socket.fd, this.#headers, this.size, MSG_WAITFORONE, null);
    const batch = this.#batch;
    batch.count = Math.max(0, n);
    const names = new DataView(this.#names.buffer);
    const control = new DataView(this.#control.buffer);
    for (let i = 0; i < batch.count; i++) {
      batch.lengths[i] = view.getUint32(i * MMSGHDR + 56, true);
      batch.ports[i] = names.getUint16(i * NAME + 2);
      batch.hosts[i] = names.getUint32(i * NAME + 4);
      batch.times[i] = NaN;
      // Walk the control messages: struct cmsghdr { size_t len; int level; int type; data }.
      const used = Number(view.getBigUint64(i * MMSGHDR + 40, true));
      let offset = 0;
      while (offset + 16 <= used) {
        const base = i * CONTROL + offset;
        const length = Number(control.getBigUint64(base, true));
        const level = control.getInt32(base + 8, true);
        const type = control.getInt32(base + 12, true);
        if (length < 16) break;
        if (level === SOL_SOCKET && type === SO_TIMESTAMPNS) {
          const seconds = Number(control.getBigInt64(base + 16, true));
          const nanos = Number(control.getBigInt64(base + 24, true));
          batch.times[i] = seconds * 1000 + nanos / 1e6;
        } else if (level === SOL_SOCKET && type === SO_RXQ_OVFL) {
          batch.drops = control.getUint32(base + 16, true);
        }
        offset += (length + 7) & ~7;
      }
    }
    return batch;
  }
}

/** `a.b.c.d:port` of a network-order IPv4 address. */
export function formatIpv4(host: number, port: number): string {
  return `${host >>> 24}.${(host >>> 16) & 255}.${(host >>> 8) & 255}.${host & 255}:${port}`;
}
