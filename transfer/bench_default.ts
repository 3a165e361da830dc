/**
 * `transfer bench --defaults`: what a user gets without flags, against the
 * ceilings of the same machine measured in the same run (issue 15's targets).
 *
 * - A default `transfer upload FILE` of `size` bytes, timed as a whole client
 *   process (start-up, LOGIN, transfer, MD5 checked, the server's copy synced to
 *   disk before it answers), against `dd conv=fdatasync` and `md5sum` of the same
 *   file on the same disk: the ratio is `max(dd, md5sum) / upload` (target ≥ 0.8).
 * - The default download of it back, the same way (the client syncs its copy).
 * - The course-compatible lockstep (`--mode sequential`, 20480-byte blocks) of
 *   `lockstepSize` bytes against our server, beside the Python STEP peer's own
 *   server and client pair (transfer/peers.ts, the Python STEP peer): the ratio is
 *   `python / ours` (target ≥ 3).
 * - The server's peak resident memory during the upload (target < 150 MB).
 *
 * The server runs as `transfer serve` in its own process, as a user would run it.
 * CPU pressure before and after is reported beside the figures.
 *
 * Every step starts from the same memory state: the file to send in the page
 * cache (it was just written), and memory freed by an earlier step given back
 * to the host first. On this VM (PVM, `page_reporting` on) a page freed less
 * than about 2 s ago is still backed by the host and a write into the page
 * cache fills it cheaply, while older free memory faults to the host on first
 * touch: 1 GiB with `dd conv=fdatasync` took 0.8–0.9 s right after another
 * step had freed a few GiB and 3.2–3.5 s otherwise (same hour). So each timed
 * step waits {@linkcode SETTLE_MS} first (`settleMs`), dd as much as ours.
 *
 * @module
 */
import { readPressure } from "../shared/pressure.ts";
import { BufferedReader } from "../shared/reader.ts";
import { makeFile } from "./bench_lab.ts";
import { md5Engine } from "./md5.ts";
import { STEP_PEER } from "./peers.ts";
import { preparePeer, selfCommand, which } from "../shared/peer.ts";
import { readProcText } from "../shared/proc.ts";

/** Options of {@linkcode runDefaultBench}. */
export interface DefaultBenchOptions {
  /** Bytes of the large file (default 1 GiB). */
  size: number;
  /** Bytes of the lockstep comparison (default 100 MB). */
  lockstepSize: number;
  /** Directory for the files (on the disk to measure; default a new one in /tmp). */
  dir?: string;
  onProgress?: (line: string) => void;
  /** Aborted (SIGINT/SIGTERM): the step running is stopped and the rows so far returned. */
  signal?: AbortSignal;
  /** Idle wait before each timed step (default {@linkcode SETTLE_MS}; see the module documentation). */
  settleMs?: number;
}

/** Idle milliseconds before each timed step: freed memory goes back to the host meanwhile. */
export const SETTLE_MS = 3000;

/** One timed step. */
export interface DefaultBenchRow {
  what: string;
  bytes: number;
  seconds: number;
  mbPerS: number;
}

/** What {@linkcode runDefaultBench} measured. */
export interface DefaultBenchResult {
  rows: DefaultBenchRow[];
  /** True when a signal stopped the run: the rows are what was measured before it. */
  interrupted: boolean;
  /** max(dd, md5sum) / default upload (target ≥ 0.8). */
  uploadOfCeiling: number | null;
  /** max(dd, md5sum) / default download (target ≥ 0.8). */
  downloadOfCeiling: number | null;
  /** Python pair / our lockstep pair, same bytes (target ≥ 3), or null without python3. */
  lockstepOfPython: number | null;
  /** Peak RSS of the server process during the large upload, MB. */
  serverPeakRssMb: number | null;
  md5Engine: string;
  cpuPressureBefore: number | null;
  cpuPressureAfter: number | null;
  notes: string[];
}

const MAIN = new URL("./main.ts", import.meta.url);

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Thrown when the bench's signal aborts a step. */
class Stopped extends Error {}

async function timed(
  command: string,
  args: string[],
  signal: AbortSignal | undefined,
  onRunning?: () => void,
): Promise<{ seconds: number; stdout: string }> {
  if (signal?.aborted) throw new Stopped();
  await settle(signal);
  const started = performance.now();
  const child = new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).spawn();
  let poll: ReturnType<typeof setInterval> | undefined;
  if (onRunning) poll = setInterval(onRunning, 50);
  const stop = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  };
  signal?.addEventListener("abort", stop);
  const output = await child.output().finally(() => {
    clearInterval(poll);
    signal?.removeEventListener("abort", stop);
  });
  if (signal?.aborted) throw new Stopped();
  const seconds = (performance.now() - started) / 1000;
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr).trim()}`,
    );
  }
  return { seconds, stdout: new TextDecoder().decode(output.stdout) };
}

let settleMs = SETTLE_MS;

/** Waits `settleMs` (the same idle start for every timed step), or until `signal` aborts. */
async function settle(signal: AbortSignal | undefined): Promise<void> {
  if (settleMs <= 0) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, settleMs);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
  if (signal?.aborted) throw new Stopped();
}

/**
 * The command that runs this `transfer` (source, bundle or binary) with `args`,
 * with this process's permissions: the bench times whole client processes.
 */
function transfer(args: string[]): [command: string, args: string[]] {
  const self = selfCommand(args, { entry: MAIN });
  return [self.command, self.args];
}

async function startLine(
  child: Deno.ChildProcess,
  pattern: RegExp,
): Promise<RegExpExecArray> {
  const reader = new BufferedReader(child.stdout);
  for (let i = 0; i < 20; i++) {
    const line = await reader.readLine(1000, { timeout: 30_000 });
    if (line === null) break;
    if (!(line instanceof Uint8Array)) continue;
    const match = pattern.exec(new TextDecoder().decode(line));
    if (match) return match;
  }
  throw new Error("the server did not say it was ready");
}

function rssMb(pid: number): number {
  const status = readProcText(`/proc/${pid}/status`) ?? "";
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** Runs the defaults benchmark; see the module documentation. */
export async function runDefaultBench(options: DefaultBenchOptions): Promise<DefaultBenchResult> {
  const status = options.onProgress ?? (() => {});
  settleMs = options.settleMs ?? SETTLE_MS;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "transfer_defaults_" });
  const own = options.dir === undefined;
  const rows: DefaultBenchRow[] = [];
  const notes: string[] = [];
  const row = (what: string, bytes: number, seconds: number) => {
    const entry = { what, bytes, seconds: round(seconds), mbPerS: round(bytes / 1e6 / seconds, 1) };
    rows.push(entry);
    status(`${what}: ${entry.seconds} s, ${entry.mbPerS} MB/s`);
    return seconds;
  };
  const before = readPressure()?.avg10 ?? null;
  const big = `${dir}/big.bin`;
  const small = `${dir}/lockstep.bin`;
  const signal = options.signal;
  const found = {
    ceiling: null as number | null,
    upload: null as number | null,
    download: null as number | null,
    lockstepOfPython: null as number | null,
    peak: null as number | null,
  };
  let interrupted = false;
  let server: Deno.ChildProcess | null = null;
  try {
    await makeFile(big, options.size);
    await makeFile(small, options.lockstepSize);
    const dd = row(
      "dd conv=fdatasync",
      options.size,
      (await timed("dd", [`if=${big}`, `of=${dir}/dd.bin`, "bs=1M", "conv=fdatasync"], signal))
        .seconds,
    );
    await Deno.remove(`${dir}/dd.bin`);
    const md5sum = row("md5sum", options.size, (await timed("md5sum", [big], signal)).seconds);
    found.ceiling = Math.max(dd, md5sum);

    const [serveCommand, serveArgs] = transfer([
      "serve",
      "--host=127.0.0.1",
      "--port=0",
      `--root=${dir}/root`,
      "--quiet",
    ]);
    server = new Deno.Command(serveCommand, {
      args: serveArgs,
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    const ready = await startLine(server, /Server is ready on [^:]+:(\d+)/);
    const port = ready[1];
    const pid = server.pid;
    const client = ["--server=127.0.0.1", `--port=${port}`, "--id=bench", "--json"];
    found.peak = rssMb(pid);
    const up = await timed(
      ...transfer(["upload", big, "--key=big", ...client]),
      signal,
      () => (found.peak = Math.max(found.peak ?? 0, rssMb(pid))),
    );
    found.upload = row("default upload (whole client process)", options.size, up.seconds);
    const upResult = JSON.parse(up.stdout).results;
    if (upResult.localMd5 !== upResult.serverMd5) throw new Error("upload MD5 mismatch");
    notes.push(`default upload plan: ${upResult.plan}, block ${upResult.blockSize} B`);
    notes.push(`each timed step started after ${settleMs} ms idle (freed memory back to the host)`);
    const down = await timed(
      ...transfer(["download", "big", `--output=${dir}/down.bin`, ...client]),
      signal,
    );
    found.download = row("default download (whole client process)", options.size, down.seconds);
    notes.push(`default download: file written ${JSON.parse(down.stdout).results.writer}`);
    await Deno.remove(`${dir}/down.bin`);

    const ours = row(
      "lockstep 20480 B, our client and server",
      options.lockstepSize,
      (await timed(
        ...transfer(["upload", small, "--key=small", "--mode=sequential", ...client]),
        signal,
      )).seconds,
    );
    if (which("python3")) {
      const theirs = await timePythonPair(dir, small, signal);
      row("lockstep 20480 B, Python STEP peer pair", options.lockstepSize, theirs);
      found.lockstepOfPython = round(theirs / ours, 2);
    } else notes.push("python3 not found: no lockstep comparison");
  } catch (error) {
    if (!(error instanceof Stopped)) throw error;
    interrupted = true;
    notes.push(`interrupted: ${rows.length} steps measured`);
  } finally {
    if (server) {
      try {
        server.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await server.status;
    }
    await Deno.remove(big).catch(() => {});
    await Deno.remove(small).catch(() => {});
    if (own) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else {
      // A given directory keeps only its files: both servers' storage goes (a key
      // left in the Python peer's root would refuse the next run's upload).
      for (const root of ["root", "python-root"]) {
        await Deno.remove(`${dir}/${root}`, { recursive: true }).catch(() => {});
      }
    }
  }
  const ratio = (seconds: number | null) =>
    found.ceiling === null || seconds === null ? null : round(found.ceiling / seconds, 2);
  return {
    rows,
    interrupted,
    uploadOfCeiling: ratio(found.upload),
    downloadOfCeiling: ratio(found.download),
    lockstepOfPython: found.lockstepOfPython,
    serverPeakRssMb: found.peak === null ? null : round(found.peak, 1),
    md5Engine: md5Engine(),
    cpuPressureBefore: before,
    cpuPressureAfter: readPressure()?.avg10 ?? null,
    notes,
  };
}

/** Seconds of the Python STEP peer's own client uploading `file` to its own server. */
async function timePythonPair(
  dir: string,
  file: string,
  signal: AbortSignal | undefined,
): Promise<number> {
  // The course-compatible Python STEP peer, embedded in transfer/peers.ts.
  const peer = await preparePeer(STEP_PEER);
  const script = peer.argv[1];
  const python = new Deno.Command("python3", {
    args: [script, "server", `${dir}/python-root`],
    stdout: "piped",
    stderr: "null",
    stdin: "null",
  }).spawn();
  try {
    const line = await startLine(python, /Server is ready (\d+)/);
    return (await timed("python3", [script, "client", "127.0.0.1", line[1], "bench", file], signal))
      .seconds;
  } finally {
    python.kill("SIGKILL");
    await python.status;
    await peer.close();
  }
}

/** The result as text lines. */
export function defaultBenchText(result: DefaultBenchResult): string {
  const lines = result.rows.map((r) =>
    `${r.what.padEnd(44)} ${r.seconds.toFixed(3).padStart(8)} s ${
      r.mbPerS.toFixed(1).padStart(8)
    } MB/s`
  );
  lines.push(
    `default upload / slower of dd and md5sum: ${result.uploadOfCeiling} (target >= 0.8)`,
    `default download / slower of dd and md5sum: ${result.downloadOfCeiling} (target >= 0.8)`,
    `lockstep: ours ${result.lockstepOfPython ?? "n/a"}x the Python pair (target >= 3)`,
    `server peak RSS during the upload: ${result.serverPeakRssMb} MB (target < 150)`,
    `MD5: ${result.md5Engine}; CPU pressure (some avg10) ${result.cpuPressureBefore} -> ${result.cpuPressureAfter}`,
    ...result.notes,
  );
  return lines.join("\n") + "\n";
}
