/**
 * The libc functions interarrival's fast socket paths call through FFI (Linux,
 * 64-bit, `--allow-ffi`): UDP in `udp_ffi.ts`, TCP sending in `tcp_ffi.ts`, a
 * sender thread's priority in `priority.ts`.
 * {@linkcode fastLibc} returns null where they cannot run, and callers fall back
 * to Deno's socket API with the same results.
 *
 * @module
 */

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  // send() read as a 32-bit result: a number, where `isize` comes back as a BigInt
  // (an allocation per call on the TCP sender's hot path). Writes stay far below 2 GiB.
  send32: { name: "send", parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // A sender thread's priority (priority.ts).
  gettid: { parameters: [], result: "i32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  getpriority: { parameters: ["i32", "u32"], result: "i32" },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  sched_getscheduler: { parameters: ["i32"], result: "i32" },
} as const;

/** The bound libc symbols. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | null | undefined;

export const AF_INET = 2;
export const SOL_SOCKET = 1;

/** libc through FFI, or null where the fast paths cannot run (then use Deno's API). */
export function fastLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  try {
    if (Deno.build.os !== "linux" || !["x86_64", "aarch64"].includes(Deno.build.arch)) return null;
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    libc = null;
  }
  return libc;
}

/** The calling thread's errno after a failed call. */
export function errno(c: Libc): number {
  const pointer = c.__errno_location();
  return pointer ? new Deno.UnsafePointerView(pointer).getInt32() : 0;
}

/** `sockaddr_in` for an IPv4 address and port, or null for anything else. */
export function sockaddrIn(hostname: string, port: number): Uint8Array | null {
  const host = hostname === "localhost" ? "127.0.0.1" : hostname;
  const parts = host.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    return null;
  }
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port);
  parts.forEach((p, i) => (bytes[4 + i] = Number(p)));
  return bytes;
}

/** Sets an int socket option at `level` (default SOL_SOCKET); false if refused. */
export function setInt(
  c: Libc,
  fd: number,
  option: number,
  value: number,
  level = SOL_SOCKET,
): boolean {
  return c.setsockopt(fd, level, option, new Int32Array([value]), 4) === 0;
}
