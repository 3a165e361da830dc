/**
 * The libc calls the FFI transports need (Linux, `--allow-ffi`): shared memory
 * (`memfd_create` + `mmap`), futexes, eventfds, POSIX message queues, and
 * `pidfd_getfd` to copy a descriptor from the parent into the child. Every wait
 * has a timeout. Blocking calls are synchronous: the echo side and the measuring
 * loop of these transports do nothing else while they wait.
 *
 * @module
 */
import { libcLoader } from "../shared/libc.ts";

const SYMBOLS = {
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  syscall: {
    parameters: ["i64", "pointer", "i64", "i64", "pointer", "pointer", "i64"],
    result: "i64",
  },
  syscall3: { name: "syscall", parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  mq_open: { parameters: ["buffer", "i32", "u32", "buffer"], result: "i32" },
  mq_send: { parameters: ["i32", "buffer", "usize", "u32"], result: "i32" },
  mq_timedreceive: {
    parameters: ["i32", "buffer", "usize", "pointer", "buffer"],
    result: "isize",
  },
  mq_close: { parameters: ["i32"], result: "i32" },
  mq_unlink: { parameters: ["buffer"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

/** The loaded functions. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const SYSCALLS: Partial<Record<string, { futex: bigint; pidfdOpen: bigint; pidfdGetfd: bigint }>> =
  {
    x86_64: { futex: 202n, pidfdOpen: 434n, pidfdGetfd: 438n },
    aarch64: { futex: 98n, pidfdOpen: 434n, pidfdGetfd: 438n },
  };

const loadLibc = libcLoader(
  SYMBOLS,
  SYSCALLS[Deno.build.arch] ? null : `no syscall numbers for ${Deno.build.arch}`,
);
let lib: Libc | null = null;

/** Why the FFI transports cannot run here, or `null`. */
export function ffiUnavailable(): string | null {
  const loaded = loadLibc();
  if (typeof loaded === "string") return loaded;
  lib = loaded;
  return null;
}

function libc(): Libc {
  const reason = ffiUnavailable();
  if (reason) throw new Error(`FFI transports: ${reason}`);
  return lib!;
}

function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text + "\0") as Uint8Array<ArrayBuffer>;
}

/** A shared-memory region: an Int32 control area and the message bytes. */
export interface Region {
  fd: number;
  ptr: Deno.PointerObject;
  bytes: number;
  ctrl: Int32Array;
  data: Uint8Array;
}

/** Control words, 64 bytes apart; the message starts at {@linkcode DATA_OFFSET}. */
export const REQUEST = 0;
export const REPLY = 16;
const DATA_OFFSET = 128;

function mapRegion(fd: number, size: number): Region {
  const c = libc();
  const bytes = DATA_OFFSET + size;
  const ptr = c.mmap(null, BigInt(bytes), 3, 1, fd, 0n);
  if (ptr === null || Deno.UnsafePointer.value(ptr) === 0xffff_ffff_ffff_ffffn) {
    throw new Error("mmap of the shared region failed");
  }
  const buffer = Deno.UnsafePointerView.getArrayBuffer(ptr, bytes);
  return {
    fd,
    ptr,
    bytes,
    ctrl: new Int32Array(buffer, 0, DATA_OFFSET / 4),
    data: new Uint8Array(buffer, DATA_OFFSET, size),
  };
}

/** Creates a region for `size`-byte messages (measuring side). */
export function createRegion(size: number): Region {
  const c = libc();
  const fd = c.memfd_create(cString("ipcbench"), 1 /* MFD_CLOEXEC */);
  if (fd < 0) throw new Error("memfd_create failed");
  if (c.ftruncate(fd, BigInt(DATA_OFFSET + size)) !== 0) throw new Error("ftruncate failed");
  return mapRegion(fd, size);
}

/** Maps the parent's region in the child (its descriptor copied with pidfd_getfd). */
export function openRegion(parentPid: number, fd: number, size: number): Region {
  return mapRegion(copyFd(parentPid, fd), size);
}

/** Unmaps and closes a region. */
export function closeRegion(region: Region): void {
  const c = libc();
  c.munmap(region.ptr, BigInt(region.bytes));
  c.close(region.fd);
}

/** Copies descriptor `fd` of process `pid` into this process. */
export function copyFd(pid: number, fd: number): number {
  const c = libc();
  const nr = SYSCALLS[Deno.build.arch]!;
  const pidfd = Number(c.syscall3(nr.pidfdOpen, BigInt(pid), 0n, 0n));
  if (pidfd < 0) throw new Error(`pidfd_open(${pid}) failed`);
  try {
    const copy = Number(c.syscall3(nr.pidfdGetfd, BigInt(pidfd), BigInt(fd), 0n));
    if (copy < 0) throw new Error(`pidfd_getfd(${pid}, ${fd}) failed`);
    return copy;
  } finally {
    c.close(pidfd);
  }
}

/** Closes a descriptor. */
export function closeFd(fd: number): void {
  libc().close(fd);
}

const timeoutSpec = new BigInt64Array(2);

/** Waits while `ctrl[index] === seen`, in futex sleeps; throws after `timeoutMs`. */
export function futexWait(region: Region, index: number, seen: number, timeoutMs: number): boolean {
  const c = libc();
  const nr = SYSCALLS[Deno.build.arch]!.futex;
  const address = Deno.UnsafePointer.offset(region.ptr, index * 4)!;
  timeoutSpec[0] = BigInt(Math.floor(timeoutMs / 1000));
  timeoutSpec[1] = BigInt((timeoutMs % 1000) * 1_000_000);
  const deadline = performance.now() + timeoutMs;
  while (Atomics.load(region.ctrl, index) === seen) {
    c.syscall(
      nr,
      address,
      0n, /* FUTEX_WAIT */
      BigInt(seen),
      Deno.UnsafePointer.of(timeoutSpec),
      null,
      0n,
    );
    if (performance.now() > deadline && Atomics.load(region.ctrl, index) === seen) return false;
  }
  return true;
}

/** Wakes one futex sleeper on `ctrl[index]`. */
export function futexWake(region: Region, index: number): void {
  const c = libc();
  const nr = SYSCALLS[Deno.build.arch]!.futex;
  const address = Deno.UnsafePointer.offset(region.ptr, index * 4)!;
  c.syscall(nr, address, 1n, /* FUTEX_WAKE */ 1n, null, null, 0n);
}

/** A new eventfd (counter semantics). */
export function newEventFd(): number {
  const fd = libc().eventfd(0, 0o2000000 /* EFD_CLOEXEC */);
  if (fd < 0) throw new Error("eventfd failed");
  return fd;
}

const one = new BigUint64Array([1n]);
const counter = new BigUint64Array(1);
const pollFd = new Int32Array(2);

/** Adds one to an eventfd. */
export function eventSignal(fd: number): void {
  libc().write(fd, new Uint8Array(one.buffer), 8n);
}

/** Waits for an eventfd to be non-zero and takes its count; `false` on timeout. */
export function eventWait(fd: number, timeoutMs: number): boolean {
  const c = libc();
  pollFd[0] = fd;
  pollFd[1] = 1; // events = POLLIN, revents = 0
  const ready = c.poll(new Uint8Array(pollFd.buffer), 1n, timeoutMs);
  if (ready <= 0) return false;
  return c.read(fd, new Uint8Array(counter.buffer), 8n) === 8n;
}

/** Opens (creating when `create`) a POSIX message queue for `size`-byte messages. */
export function mqOpen(name: string, size: number, create: boolean): number {
  const attr = new BigInt64Array([0n, 1n, BigInt(size), 0n, 0n, 0n, 0n, 0n]);
  const flags = create ? 2 | 0o100 | 0o200 | 0o2000000 : 2 | 0o2000000; // O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC
  const fd = libc().mq_open(cString(name), flags, 0o600, new Uint8Array(attr.buffer));
  if (fd < 0) throw new Error(`mq_open(${name}) failed`);
  return fd;
}

/** Sends one message. */
export function mqSend(fd: number, message: Uint8Array): void {
  if (libc().mq_send(fd, message as Uint8Array<ArrayBuffer>, BigInt(message.length), 0) !== 0) {
    throw new Error("mq_send failed");
  }
}

const absTime = new BigInt64Array(2);

/** Receives one message into `buf`; its length, or -1 on timeout. */
export function mqReceive(fd: number, buf: Uint8Array, timeoutMs: number): number {
  const c = libc();
  c.clock_gettime(0, /* CLOCK_REALTIME */ new Uint8Array(absTime.buffer));
  const ns = absTime[1] + BigInt(timeoutMs) * 1_000_000n;
  absTime[0] += ns / 1_000_000_000n;
  absTime[1] = ns % 1_000_000_000n;
  const n = c.mq_timedreceive(
    fd,
    buf as Uint8Array<ArrayBuffer>,
    BigInt(buf.length),
    null,
    new Uint8Array(absTime.buffer),
  );
  return Number(n);
}

/** Closes a queue, and removes its name when `unlinkName` is given. */
export function mqClose(fd: number, unlinkName?: string): void {
  libc().mq_close(fd);
  if (unlinkName) mqUnlink(unlinkName);
}

/** Removes a queue's name (the queue lives on while open). */
export function mqUnlink(name: string): void {
  libc().mq_unlink(cString(name));
}

/** The largest POSIX message queue message this system allows, bytes. */
export function mqMaxMessage(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/fs/mqueue/msgsize_max").trim());
  } catch {
    return 8192;
  }
}
