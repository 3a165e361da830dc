/**
 * `transfer bench`: throughput of STEP uploads and downloads in every client mode,
 * beside a raw TCP copy of the same bytes measured in the same run (the ceiling),
 * plus iperf3 when installed; and `measureStudy`, the measurements of the seed
 * study (study.ts holds its plans, published table and pure report). This
 * module only measures: tables and sentences are built elsewhere.
 *
 * The server runs in a child process (shared/server.ts, process mode, one
 * worker), so the client and the server each have a core, as on two machines.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import { readPressure } from "../shared/pressure.ts";
import { median } from "../shared/stats.ts";
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyContext } from "../shared/study_harness.ts";
import { type RunningServer, serve } from "../shared/server.ts";
import { handlerOf } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { BufferedReader } from "../shared/reader.ts";
import { type PreparedPeer, preparePeer, startPeer, stopProcess, which } from "../shared/peer.ts";
import { STEP_PEER } from "./peers.ts";
import { readProcText } from "../shared/proc.ts";
import { DEFAULT_BLOCK_SIZE, formatSize } from "./protocol.ts";
import { startServer } from "./server.ts";
import { download, simpleRequest, upload } from "./client.ts";
import {
  type CeilingRaw,
  STUDY_BLOCKS,
  studySweepSizes,
  type TransferPlan,
  type TransferRaw,
} from "./study.ts";

export { STUDY_BLOCKS, studySweepSizes } from "./study.ts";

/** A server and a raw sink in child processes, and a scratch directory. */
interface Lab {
  dir: string;
  server: RunningServer;
  sink: RunningServer;
  serverPids: number[];
  entry?: string | URL;
  close(): Promise<void>;
}

async function openLab(entry?: string | URL): Promise<Lab> {
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
async function rawCopy(lab: Lab, path: string): Promise<number> {
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

interface RunSpec {
  mode: Mode;
  streams: number;
  window: number;
  blockSize: number;
}

/** Uploads `path` once; returns milliseconds. The stored copy is deleted afterwards. */
async function timeUpload(
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
async function timeDownload(lab: Lab, key: string, spec: RunSpec): Promise<number> {
  const out = `${lab.dir}/download-${++keyCounter}`;
  const base = { host: "127.0.0.1", port: lab.server.port, id: "bench", timeoutMs: 120_000 };
  try {
    const result = await download(out, { ...base, ...spec, key, entry: lab.entry });
    return result.elapsedMs;
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}

async function repeat(runs: number, fn: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await fn());
  return out;
}

/** The Python STEP peer (transfer/peers.ts) when python3 runs here; `null` otherwise. */
async function startPythonPeer(
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
function serverPeakRssMb(lab: Lab): number | null {
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
async function iperf3(bytes: number): Promise<number | null> {
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

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

const mbps = (bytes: number, ms: number) => round(bytes / 1e6 / (ms / 1000), 1);

/** Seconds `command args` takes, or null when it cannot run. */
async function commandSeconds(command: string, args: string[]): Promise<number | null> {
  try {
    const started = performance.now();
    const out = await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
    return out.success ? (performance.now() - started) / 1000 : null;
  } catch {
    return null;
  }
}

/**
 * The default upload (`--mode auto`: the fast plan against our server) of a file
 * beside `dd conv=fdatasync` and `md5sum` of the same file, same run: issue 15's
 * ratio (target ≥ 0.8 of the slower), at a size per scale. `bench --defaults`
 * measures the same with whole client processes.
 */
async function defaultUploadCeiling(
  lab: Lab,
  size: number,
  status: (line: string) => void,
): Promise<CeilingRaw | null> {
  const path = `${lab.dir}/default-${size}`;
  await makeFile(path, size);
  try {
    const dd = await commandSeconds("dd", [
      `if=${path}`,
      `of=${lab.dir}/dd-copy`,
      "bs=1M",
      "conv=fdatasync",
    ]);
    await Deno.remove(`${lab.dir}/dd-copy`).catch(() => {});
    const md5sum = await commandSeconds("md5sum", [path]);
    if (dd === null || md5sum === null) return null;
    const base = { host: "127.0.0.1", port: lab.server.port, id: "bench", timeoutMs: 120_000 };
    const result = await upload(path, { ...base, key: "default-upload", entry: lab.entry });
    await simpleRequest(base, "FILE", "DELETE", { key: "default-upload" });
    const seconds = result.elapsedMs / 1000;
    status(
      `default upload ${formatSize(size)}: ${
        round(Math.max(dd, md5sum) / seconds, 2)
      } of the ceiling`,
    );
    return {
      bytes: size,
      plan: result.plan,
      ddSeconds: dd,
      md5sumSeconds: md5sum,
      uploadSeconds: seconds,
    };
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

/** Options of the free-form benchmark. */
export interface BenchOptions {
  sizes: number[];
  modes: Mode[];
  streams: number;
  window: number;
  blockSizes: number[];
  runs: number;
  directions: ("upload" | "download")[];
  iperf: boolean;
  entry?: string | URL;
  onProgress?: (line: string) => void;
  /** Aborted (SIGINT/SIGTERM): stop after the configuration running and return the rows so far. */
  signal?: AbortSignal;
}

/** One measured configuration. */
export interface BenchRow {
  direction: string;
  size: number;
  blockSize: number | null;
  mode: string;
  streams: number;
  runs: number;
  medianMs: number;
  mbPerS: number;
  /** Throughput as a fraction of the raw TCP copy of the same bytes. */
  ofRawTcp: number | null;
}

/** Result of {@linkcode runBench}. */
export interface BenchResult {
  rows: BenchRow[];
  serverPeakRssMb: number | null;
  skipped: string[];
  elapsedMs: number;
  /** True when a signal stopped the run before every configuration was measured. */
  interrupted: boolean;
}

/** Runs the free-form benchmark. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const status = options.onProgress ?? (() => {});
  const rows: BenchRow[] = [];
  const skipped: string[] = [];
  const lab = await openLab(options.entry);
  const stopped = () => options.signal?.aborted === true;
  try {
    for (const size of options.sizes) {
      if (stopped()) break;
      const path = `${lab.dir}/input-${size}`;
      await makeFile(path, size);
      if (size === options.sizes[0]) await rawCopy(lab, path); // warm-up: the sink's first connection
      const raw = median(await repeat(options.runs, () => rawCopy(lab, path)));
      const rawRate = mbps(size, raw);
      rows.push({
        direction: "raw TCP copy",
        size,
        blockSize: null,
        mode: "ceiling",
        streams: 1,
        runs: options.runs,
        medianMs: round(raw),
        mbPerS: rawRate,
        ofRawTcp: 1,
      });
      status(`${formatSize(size)} raw TCP copy: ${rawRate} MB/s`);
      if (options.iperf) {
        const rate = await iperf3(size);
        if (rate === null) skipped.push("iperf3: not installed or failed");
        else {
          rows.push({
            direction: "iperf3",
            size,
            blockSize: null,
            mode: "single stream",
            streams: 1,
            runs: 1,
            medianMs: round((size / 1e6 / rate) * 1000),
            mbPerS: rate,
            ofRawTcp: round(rate / rawRate, 2),
          });
        }
      }
      for (const blockSize of options.blockSizes) {
        const storedKey = `bench-stored-${size}-${blockSize}`;
        let stored = false;
        for (const mode of options.modes) {
          const spec = { mode, streams: options.streams, window: options.window, blockSize };
          for (const direction of options.directions) {
            if (stopped()) break;
            let samples: number[];
            if (direction === "upload") {
              samples = await repeat(options.runs, () => timeUpload(lab, path, spec));
            } else {
              if (!stored) {
                await timeUpload(lab, path, { ...spec, mode: "async" }, storedKey);
                stored = true;
              }
              samples = await repeat(options.runs, () => timeDownload(lab, storedKey, spec));
            }
            const ms = median(samples);
            const rate = mbps(size, ms);
            rows.push({
              direction,
              size,
              blockSize,
              mode,
              streams: mode === "thread" || mode === "process" ? options.streams : 1,
              runs: options.runs,
              medianMs: round(ms),
              mbPerS: rate,
              ofRawTcp: round(rate / rawRate, 2),
            });
            status(`${formatSize(size)} ${direction} ${mode} block ${blockSize}: ${rate} MB/s`);
          }
        }
        if (stored) {
          await simpleRequest(
            { host: "127.0.0.1", port: lab.server.port, id: "bench" },
            "FILE",
            "DELETE",
            { key: storedKey },
          );
        }
      }
      await Deno.remove(path);
    }
    return {
      rows,
      serverPeakRssMb: serverPeakRssMb(lab),
      skipped,
      elapsedMs: performance.now() - started,
      interrupted: stopped(),
    };
  } finally {
    await lab.close();
  }
}

/** The bench rows as a table. */
export function benchTable(result: BenchResult): ReportTable {
  return {
    title: "Throughput (medians)",
    columns: [
      "direction",
      "size",
      "block",
      "mode",
      "streams",
      "runs",
      "median s",
      "MB/s",
      "× raw TCP",
    ],
    rows: result.rows.map((row) => [
      row.direction,
      formatSize(row.size),
      row.blockSize,
      row.mode,
      row.streams,
      row.runs,
      round(row.medianMs / 1000, 4),
      row.mbPerS,
      row.ofRawTcp,
    ]),
  };
}

/** Throughput-by-size plots, one line per mode and block size. */
export function benchPlots(result: BenchResult): LinePlot[] {
  const plots: LinePlot[] = [];
  for (const direction of ["upload", "download"]) {
    const points = result.rows
      .filter((row) => row.direction === direction || row.direction === "raw TCP copy")
      .map((row) => ({
        x: row.size / 1e6,
        y: row.mbPerS,
        series: row.blockSize === null ? row.direction : `${row.mode} (${row.blockSize} B)`,
      }));
    if (points.some((p) => p.series !== "raw TCP copy")) {
      plots.push({
        title: `${direction} throughput by size`,
        xLabel: "file size (MB)",
        yLabel: "MB/s",
        points,
        xLog: true,
      });
    }
  }
  return plots;
}

// --- The study (plans, published table and report in study.ts) ---------------------------

/** CPU pressure (`some avg10` of /proc/pressure/cpu, in %), or null where unavailable. */
function cpuPressure(): number | null {
  const pressure = readPressure();
  return pressure ? Math.round(pressure.avg10) : null;
}

const SEQUENTIAL_20480 = {
  mode: "sequential" as const,
  streams: 1,
  window: 1,
  blockSize: DEFAULT_BLOCK_SIZE,
};

/**
 * Measures the seed study's plan (see study.ts): raw milliseconds only. `entry`
 * registers the transfer registry in workers and children (default: the main module).
 */
export async function measureStudy(
  plan: TransferPlan,
  context: StudyContext,
  entry?: string | URL,
): Promise<TransferRaw> {
  const status = context.progress;
  const { runs, sweepRuns, streams, window } = plan;
  const skipped: string[] = [];
  const lab = await openLab(entry);
  try {
    const studyPath = `${lab.dir}/study-515`;
    await makeFile(studyPath, STUDY_BLOCKS * DEFAULT_BLOCK_SIZE);
    const modeMs = {} as TransferRaw["modeMs"];
    for (const mode of ["sequential", "async", "thread", "process"] as const) {
      const spec = { mode, streams, window, blockSize: DEFAULT_BLOCK_SIZE };
      // One warm-up run: thread and process modes pay their start-up (module load) once.
      await timeUpload(lab, studyPath, spec);
      modeMs[mode] = median(await repeat(runs, () => timeUpload(lab, studyPath, spec)));
      status(`515 blocks, ${mode}: ${round(modeMs[mode], 1)} ms`);
    }
    await rawCopy(lab, studyPath); // warm-up: the sink's first connection
    const rawMs = median(await repeat(runs, () => rawCopy(lab, studyPath)));
    const sweep = studySweepSizes();
    const sweepMs: number[] = [];
    for (const size of sweep) {
      const path = `${lab.dir}/sweep-${size}`;
      await makeFile(path, size);
      if (sweepMs.length === 0) {
        // Warm-up: the first uploads pay for compiling the hot paths on both ends.
        for (let i = 0; i < 3; i++) await timeUpload(lab, path, SEQUENTIAL_20480);
      }
      sweepMs.push(median(await repeat(sweepRuns, () => timeUpload(lab, path, SEQUENTIAL_20480))));
    }
    status(`size sweep: ${sweepMs.map((ms) => round(ms, 1)).join(", ")} ms`);
    if (context.scale === "smoke") {
      skipped.push("100 MB course-compatible upload: quick and full scales only");
    }
    const referenceMs: number[] = [];
    const pythonMs: (number | null)[] = [];
    let multi: TransferRaw["multi"] = null;
    const python = await startPythonPeer(lab.dir);
    if (python === null) skipped.push("Python STEP peer: needs python3");
    try {
      for (const [index, [size]] of plan.reference.entries()) {
        const path = `${lab.dir}/reference-${size}`;
        await makeFile(path, size);
        const count = size >= 1e8 ? 1 : runs;
        const time = (port?: number) =>
          repeat(count, () => timeUpload(lab, path, SEQUENTIAL_20480, undefined, port));
        referenceMs.push(median(await time()));
        pythonMs.push(python ? median(await time(python.port)) : null);
        if (index === plan.reference.length - 1) {
          // The study's "several connections help large files": the largest size, 2 streams.
          const threadSpec = { ...SEQUENTIAL_20480, mode: "thread" as const, streams };
          const threadMs = median(await repeat(count, () => timeUpload(lab, path, threadSpec)));
          multi = { size, sequentialMs: referenceMs[index], threadMs };
        }
        await Deno.remove(path);
      }
    } finally {
      await python?.close();
    }
    const big: { mode: string; ms: number }[] = [];
    let bigRawMs = 0;
    let bigRssMb: number | null = null;
    if (plan.bigBytes !== null) {
      const path = `${lab.dir}/big`;
      await makeFile(path, plan.bigBytes);
      bigRawMs = await rawCopy(lab, path);
      for (
        const [mode, spec] of [
          ["async, 1 MiB blocks, window 4", { mode: "async", streams: 1, window: 4 }],
          [`process x${streams}, 1 MiB blocks, window 4`, { mode: "process", streams, window: 4 }],
        ] as const
      ) {
        big.push({ mode, ms: await timeUpload(lab, path, { ...spec, blockSize: 1 << 20 }) });
        status(`1 GiB ${mode}: ${round(big[big.length - 1].ms)} ms`);
      }
      bigRssMb = serverPeakRssMb(lab);
      await Deno.remove(path);
    } else skipped.push("1 GiB upload (memory and ≥ 1 GB/s target): full scale only");
    skipped.push(
      "The course's own server file is not run (no licence to copy it); the Python STEP peer in " +
        "transfer/peers.ts re-implements its behaviour from the facts sheet, and §10's figures are quoted",
    );
    const ceiling = await defaultUploadCeiling(lab, plan.defaultUploadBytes, status);
    return {
      modeMs,
      rawMs,
      sweep,
      sweepMs,
      referenceMs,
      pythonMs,
      multi,
      ceiling,
      big,
      bigRawMs,
      bigRssMb,
      skipped,
      cpuPressure: cpuPressure(),
    };
  } finally {
    await lab.close();
  }
}
