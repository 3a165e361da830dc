/**
 * The bench's lab: our server and a raw TCP sink in child processes, a scratch
 * directory, and the timing helpers the free-form bench (bench.ts) and the
 * study's measurements (study_measure.ts) share.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import { type RunningServer, serve } from "../shared/server.ts";
import { handlerOf } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { BufferedReader } from "../shared/reader.ts";
import { type PreparedPeer, preparePeer, startPeer, stopProcess, which } from "../shared/peer.ts";
import { STEP_PEER } from "./peers.ts";
import { readProcText } from "../shared/proc.ts";
import { startServer } from "./server.ts";
import { download, simpleRequest, upload } from "./client.ts";

/** A server and a raw sink in child processes, and a scratch directory. */
export interface Lab {
  dir: string;
  server: RunningServer;
  sink: RunningServer;
  serverPids: number[];
  entry?: string | URL;
  close(): Promise<void>;
}

export async function openLab(entry?: string | URL): Promise<Lab> {
  const dir = await Deno.makeTempDir({ prefix: "transfer_bench_" });
  const before = new Set(liveChildPids());
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    root: `${dir}/root`,
    mode: "process",
    workers: 1,
    entry,
  });
  const serverPids = liveChildPids().filter((pid) => !before.has(pid));
  let sink: RunningServer;
  try {
    await Deno.mkdir(`${dir}/sink`);
    sink = await serve({
      handler: handlerOf(registry, "transfer.raw-sink"),
      mode: "process",
      workers: 1,
      hostname: "127.0.0.1",
      port: 0,
      init: { dir: `${dir}/sink` },
      entry,
    });
  } catch (error) {
    await server.close();
    throw error;
  }
  return {
    dir,
    server,
    sink,
    serverPids,
    entry,
    async close() {
      await Promise.allSettled([server.close(), sink.close()]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Writes `size` pseudo-random bytes (random 1 MiB pattern, varied per MiB). */
export async function makeFile(path: string, size: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(size, 1 << 20));
  crypto.getRandomValues(chunk.subarray(0, Math.min(chunk.length, 65536)));
  for (let i = 65536; i < chunk.length; i += 65536) {
    chunk.copyWithin(i, 0, Math.min(65536, chunk.length - i));
    chunk[i] ^= i >>> 16;
  }
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  let written = 0;
  let round = 0;
  while (written < size) {
    chunk[0] = round++ & 0xff;
    chunk[1] = (round >>> 8) & 0xff;
    const piece = chunk.subarray(0, Math.min(chunk.length, size - written));
    let offset = 0;
    while (offset < piece.length) offset += file.writeSync(piece.subarray(offset));
    written += piece.length;
  }
}

/** Copies a file over one TCP connection to the sink; returns milliseconds. */
export async function rawCopy(lab: Lab, path: string): Promise<number> {
  const started = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: lab.sink.port });
  try {
    using file = await Deno.open(path, { read: true });
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(file.statSync().size));
    await conn.write(header);
    const buffer = new Uint8Array(1 << 20);
    for (;;) {
      const n = file.readSync(buffer);
      if (n === null || n === 0) break;
      let offset = 0;
      while (offset < n) offset += await conn.write(buffer.subarray(offset, n));
    }
    const ack = await new BufferedReader(conn).readExactOrEof(1, { timeout: 120_000 });
    if (ack === null) throw new Error("raw sink closed without acknowledging");
    return performance.now() - started;
  } finally {
    conn.close();
  }
}

let keyCounter = 0;

export interface RunSpec {
  mode: Mode;
  streams: number;
  window: number;
  blockSize: number;
}

/** Uploads `path` once; returns milliseconds. The stored copy is deleted afterwards. */
export async function timeUpload(
  lab: Lab,
  path: string,
  spec: RunSpec,
  keep?: string,
  port = lab.server.port,
): Promise<number> {
  const key = keep ?? `bench-${Deno.pid}-${++keyCounter}`;
  const base = { host: "127.0.0.1", port, id: "bench", timeoutMs: 120_000 };
  const result = await upload(path, { ...base, ...spec, key, entry: lab.entry });
  if (keep === undefined) await simpleRequest(base, "FILE", "DELETE", { key });
  return result.elapsedMs;
}

/** Downloads `key` once; returns milliseconds. The local copy is deleted afterwards. */
export async function timeDownload(lab: Lab, key: string, spec: RunSpec): Promise<number> {
  const out = `${lab.dir}/download-${++keyCounter}`;
  const base = { host: "127.0.0.1", port: lab.server.port, id: "bench", timeoutMs: 120_000 };
  try {
    const result = await download(out, { ...base, ...spec, key, entry: lab.entry });
    return result.elapsedMs;
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}

export async function repeat(runs: number, fn: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await fn());
  return out;
}

/** The Python STEP peer (transfer/peers.ts) when python3 runs here; `null` otherwise. */
export async function startPythonPeer(
  dir: string,
): Promise<{ port: number; close(): Promise<void> } | null> {
  if (!which("python3")) return null;
  let program: PreparedPeer | undefined;
  try {
    program = await preparePeer(STEP_PEER);
    const peer = await startPeer(program.argv[0], {
      args: [...program.argv.slice(1), "server", `${dir}/python-root`],
      timeoutMs: 10_000,
      graceMs: 0,
    });
    const close = () => peer.stop().finally(program!.close);
    const port = Number(peer.firstLine.split(" ").pop());
    if (!Number.isInteger(port) || port <= 0) {
      await close();
      return null;
    }
    peer.drain();
    return { port, close };
  } catch {
    await program?.close();
    return null;
  }
}

/** Peak resident memory (VmHWM) of the server's processes, in MB. */
export function serverPeakRssMb(lab: Lab): number | null {
  let total = 0;
  for (const pid of lab.serverPids) {
    const status = readProcText(`/proc/${pid}/status`);
    if (status === null) return null;
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    if (Number.isFinite(kb)) total += kb / 1024;
  }
  return lab.serverPids.length > 0 ? round(total, 1) : null;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** iperf3 single-stream throughput for `bytes` over loopback, in MB/s, or null. */
export async function iperf3(bytes: number): Promise<number | null> {
  if (!which("iperf3")) return null;
  const port = freePort();
  const server = new Deno.Command("iperf3", {
    args: ["-s", "-1", "-p", String(port), "-B", "127.0.0.1"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 300));
    const out = await new Deno.Command("timeout", {
      args: ["60", "iperf3", "-c", "127.0.0.1", "-p", String(port), "-n", String(bytes), "-J"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    const bps = report?.end?.sum_received?.bits_per_second;
    return typeof bps === "number" ? round(bps / 8 / 1e6, 1) : null;
  } catch {
    return null;
  } finally {
    await stopProcess(server, 0);
  }
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const mbps = (bytes: number, ms: number) => round(bytes / 1e6 / (ms / 1000), 1);

/** Seconds `command args` takes, or null when it cannot run. */
export async function commandSeconds(command: string, args: string[]): Promise<number | null> {
  try {
    const started = performance.now();
    const out = await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
    return out.success ? (performance.now() - started) / 1000 : null;
  } catch {
    return null;
  }
}
