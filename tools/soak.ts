/**
 * Soak benchmark of the three servers under good and hostile clients at once
 * (issue 13): each server runs as its own `serve` command for `--minutes`, while
 * this program keeps up
 *
 * - good clients: new clients one after another (`--good` loops), each timed
 *   from connect to its first reply (fresh-client latency);
 * - resets: connections reset right after the handshake (`SO_LINGER {1, 0}`,
 *   python3) at `--resets` per second;
 * - idle: `--idle` connections that connect and never send (re-opened when the
 *   server closes them);
 * - partial: `--partial` connections that send half a request and stop (transfer:
 *   a header announcing an 8 MiB part);
 * - garbage: a connection a second sending 64 KiB of random bytes;
 * - bursts: `--burst` connections at once every 30 s;
 *
 * after `--baseline` seconds of good clients alone (the same-run baseline the
 * latency under attack is divided by), and samples the server's RSS and open
 * descriptors (its whole process tree)
 * every `--sample` seconds. It reports RSS and descriptors over time and the
 * fresh-client latency percentiles, with CPU pressure.
 *
 *   deno run -A --unstable-net tools/soak.ts --minutes 10 [--mode async] [--json]
 *
 * SIGINT/SIGTERM end the soak early: the report covers the time so far (exit 130/143).
 *
 * @module
 */
import { Option } from "commander";
import {
  createProgram,
  EXIT_OK,
  exitCodeAfter,
  intOption,
  jsonDocument,
  numberOption,
  runMain,
  toolArgs,
  watchStopSignals,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { HdrHistogram, type PercentileSummary } from "../shared/hdr_histogram.ts";
import { type Pressure, readPressure } from "../shared/pressure.ts";
import { renderTable } from "../shared/report.ts";
import { parseMode } from "../shared/mode.ts";
import { UsageError } from "../shared/errors.ts";
import {
  burstClients,
  freshClient,
  havePython,
  resetConnections,
  SERVER_KINDS,
  type ServerKind,
  startServerProcess,
  treeStats,
} from "./hostile_clients.ts";

/** Options of one soak. */
export interface SoakOptions {
  kinds: ServerKind[];
  mode: string;
  minutes: number;
  /** Good-client loops per server. */
  good: number;
  /** Reset connections per second per server. */
  resets: number;
  idle: number;
  partial: number;
  burst: number;
  sampleS: number;
  /** Seconds of good clients alone before the hostile ones start (the baseline). */
  baselineS: number;
  /** Directory to write each server's output to (`<kind>-<mode>.log`). */
  logs?: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** One sample of a server's process tree. */
export interface SoakSample {
  /** Seconds since the soak started. */
  t: number;
  rssMiB: number;
  fds: number;
  processes: number;
  /** Hostile connections held open by the soak at that moment. */
  heldConnections: number;
}

/** What a soak measured for one server. */
export interface SoakServerResult {
  kind: ServerKind;
  mode: string;
  samples: SoakSample[];
  /** Fresh-client latency under attack, milliseconds. */
  fresh: PercentileSummary;
  /** Fresh-client latency with good clients alone (the first `baselineS`), milliseconds. */
  baseline: PercentileSummary;
  /** p99 under attack over p99 of the baseline. */
  p99Ratio: number | null;
  freshFailures: number;
  resetsSent: number;
  burstsAnswered: string;
  /** RSS and descriptors: first sample after the warm-up, last, and highest. */
  rss: { firstMiB: number; lastMiB: number; maxMiB: number };
  fds: { first: number; last: number; max: number };
  exitCode: number | null;
  /** The last lines the server wrote on stderr and stdout (its errors, if any). */
  outputTail: string[];
}

/** Result of {@linkcode runSoak}. */
export interface SoakResult {
  minutes: number;
  elapsedS: number;
  servers: SoakServerResult[];
  pressureBefore: Pressure | null;
  pressureAfter: Pressure | null;
  stoppedEarly: boolean;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

/** Half a request: a client that starts and never finishes. */
function partialRequest(kind: ServerKind): Uint8Array {
  if (kind === "transfer") {
    // A STEP header announcing 100 bytes of JSON and an 8 MiB part, then 10 bytes.
    const bytes = new Uint8Array(18);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 100);
    view.setUint32(4, 8 << 20);
    bytes.set(new TextEncoder().encode('{"type":"'), 8);
    return bytes;
  }
  return new TextEncoder().encode(kind === "taskserver" ? "2|1+" : "Worker 0, Ev");
}

/** Keeps `count` connections open, each sending `first` (if any) then nothing. */
async function holdConnections(
  port: number,
  count: number,
  first: Uint8Array | null,
  held: Set<Deno.TcpConn>,
  signal: AbortSignal,
): Promise<void> {
  const one = async () => {
    while (!signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
      } catch {
        await sleep(500, signal);
        continue;
      }
      held.add(conn);
      const closeOnAbort = () => conn.close();
      signal.addEventListener("abort", closeOnAbort, { once: true });
      try {
        if (first) await conn.write(first);
        // Drain what the server says until it closes the connection (idle timeout).
        const buffer = new Uint8Array(4096);
        while ((await conn.read(buffer)) !== null);
      } catch {
        // Reset or closed on abort.
      } finally {
        signal.removeEventListener("abort", closeOnAbort);
        held.delete(conn);
        try {
          conn.close();
        } catch {
          // Closed on abort.
        }
      }
      await sleep(100, signal);
    }
  };
  await Promise.all(Array.from({ length: count }, one));
}

async function garbageLoop(port: number, signal: AbortSignal): Promise<void> {
  const junk = new Uint8Array(64 * 1024);
  while (!signal.aborted) {
    crypto.getRandomValues(junk);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(junk);
      } catch {
        // Closed by the server on the first bad byte: what it should do.
      }
      conn.close();
    } catch {
      // Refused or reset.
    }
    await sleep(1000, signal);
  }
}

function mib(bytes: number): number {
  return Math.round(bytes / 1048576 * 10) / 10;
}

async function soakOne(
  kind: ServerKind,
  options: SoakOptions,
  signal: AbortSignal,
  started: number,
): Promise<SoakServerResult> {
  const log = options.log ?? (() => {});
  const server = await startServerProcess(kind, options.mode);
  log(`${kind} ${options.mode}: serving on 127.0.0.1:${server.port} (pid ${server.child.pid})`);
  const latency = new HdrHistogram("us");
  // Good clients alone first: the same-run baseline the attack is compared with.
  const quiet = new HdrHistogram("us");
  let attacking = false;
  let freshFailures = 0;
  let resetsSent = 0;
  let burstsSent = 0;
  let burstsAnswered = 0;
  const held = new Set<Deno.TcpConn>();
  const samples: SoakSample[] = [];
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const tasks: Promise<unknown>[] = [];
  const sample = () => {
    const stats = treeStats(server.child.pid);
    samples.push({
      t: Math.round((performance.now() - started) / 100) / 10,
      rssMiB: mib(stats.rssBytes),
      fds: stats.fds,
      processes: stats.processes,
      heldConnections: held.size,
    });
  };
  try {
    await sleep(1000, stop.signal);
    sample();
    // Good clients.
    for (let i = 0; i < options.good; i++) {
      tasks.push((async () => {
        while (!stop.signal.aborted) {
          try {
            const us = Math.round((await freshClient(kind, server.port, 10_000)) * 1000);
            (attacking ? latency : quiet).record(us);
          } catch {
            freshFailures++;
          }
          await sleep(200, stop.signal);
        }
      })());
    }
    await sleep(options.baselineS * 1000, stop.signal);
    attacking = true;
    // Resets, in chunks of 10 s.
    if (options.resets > 0) {
      tasks.push((async () => {
        while (!stop.signal.aborted) {
          resetsSent += await resetConnections(
            server.port,
            options.resets * 10,
            options.resets,
            stop.signal,
          ).catch(() => 0);
        }
      })());
    }
    tasks.push(holdConnections(server.port, options.idle, null, held, stop.signal));
    tasks.push(
      holdConnections(server.port, options.partial, partialRequest(kind), held, stop.signal),
    );
    tasks.push(garbageLoop(server.port, stop.signal));
    if (options.burst > 0) {
      tasks.push((async () => {
        while (!stop.signal.aborted) {
          await sleep(30_000, stop.signal);
          if (stop.signal.aborted) break;
          burstsSent += options.burst;
          burstsAnswered += await burstClients(kind, server.port, options.burst);
        }
      })());
    }
    const end = started + options.minutes * 60_000;
    while (!stop.signal.aborted && performance.now() < end) {
      await sleep(Math.min(options.sampleS * 1000, end - performance.now()), stop.signal);
      sample();
    }
  } finally {
    stop.abort();
    signal.removeEventListener("abort", onAbort);
    await Promise.allSettled(tasks);
  }
  const exitCode = await server.stop();
  if (options.logs) {
    await Deno.mkdir(options.logs, { recursive: true });
    await Deno.writeTextFile(`${options.logs}/${kind}-${options.mode}.log`, server.output());
  }
  const rssValues = samples.map((s) => s.rssMiB);
  const fdValues = samples.map((s) => s.fds);
  // The first sample after warm-up (1 s in) is the baseline for growth.
  const after = samples.length > 1 ? samples[1] : samples[0];
  const ms = (us: number) => Math.round(us / 10) / 100;
  const inMs = (summary: PercentileSummary): PercentileSummary => ({
    count: summary.count,
    min: ms(summary.min),
    mean: ms(summary.mean),
    p50: ms(summary.p50),
    p90: ms(summary.p90),
    p99: ms(summary.p99),
    p999: ms(summary.p999),
    p9999: ms(summary.p9999),
    max: ms(summary.max),
  });
  const fresh = inMs(latency.summary());
  const baseline = inMs(quiet.summary());
  return {
    kind,
    mode: options.mode,
    samples,
    fresh,
    baseline,
    p99Ratio: baseline.count > 0 && baseline.p99 > 0 && fresh.count > 0
      ? Math.round(fresh.p99 / baseline.p99 * 10) / 10
      : null,
    freshFailures,
    resetsSent,
    burstsAnswered: `${burstsAnswered}/${burstsSent}`,
    rss: {
      firstMiB: after?.rssMiB ?? 0,
      lastMiB: rssValues.at(-1) ?? 0,
      maxMiB: Math.max(0, ...rssValues),
    },
    fds: { first: after?.fds ?? 0, last: fdValues.at(-1) ?? 0, max: Math.max(0, ...fdValues) },
    exitCode,
    outputTail: server.output().trim().split("\n").slice(-20),
  };
}

/** Runs the soak against every server in `kinds` at the same time. */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const pressureBefore = readPressure();
  const started = performance.now();
  const signal = options.signal ?? new AbortController().signal;
  const servers = await Promise.all(
    options.kinds.map((kind) => soakOne(kind, options, signal, started)),
  );
  return {
    minutes: options.minutes,
    elapsedS: Math.round((performance.now() - started) / 100) / 10,
    servers,
    pressureBefore,
    pressureAfter: readPressure(),
    stoppedEarly: signal.aborted,
  };
}

/** The soak as text: a summary table and RSS/descriptors over time per server. */
export function soakText(result: SoakResult): string {
  const parts: string[] = [];
  parts.push(renderTable({
    title: `Soak: ${result.elapsedS} s of good and hostile clients` +
      (result.stoppedEarly ? " (stopped early)" : ""),
    columns: [
      "server",
      "mode",
      "fresh clients",
      "failed",
      "baseline p50/p99 ms",
      "p50 ms",
      "p99 ms",
      "p99 ÷ baseline",
      "max ms",
      "RSS MiB first→last (max)",
      "fds first→last (max)",
      "resets",
      "bursts answered",
    ],
    rows: result.servers.map((s) => [
      s.kind,
      s.mode,
      s.fresh.count,
      s.freshFailures,
      `${s.baseline.p50}/${s.baseline.p99}`,
      s.fresh.p50,
      s.fresh.p99,
      s.p99Ratio,
      s.fresh.max,
      `${s.rss.firstMiB}→${s.rss.lastMiB} (${s.rss.maxMiB})`,
      `${s.fds.first}→${s.fds.last} (${s.fds.max})`,
      s.resetsSent,
      s.burstsAnswered,
    ]),
  }));
  for (const s of result.servers) {
    parts.push(renderTable({
      title: `${s.kind} ${s.mode} over time`,
      columns: ["t (s)", "RSS MiB", "fds", "processes", "hostile conns held"],
      rows: s.samples.map((x) => [x.t, x.rssMiB, x.fds, x.processes, x.heldConnections]),
    }));
  }
  for (const s of result.servers) {
    if (s.samples.some((x) => x.processes < s.samples[0].processes)) {
      parts.push(
        `${s.kind} ${s.mode}: processes died; its last output:\n  ${s.outputTail.join("\n  ")}`,
      );
    }
  }
  const p = (x: Pressure | null) => x ? `avg10 ${x.avg10}%` : "n/a";
  parts.push(
    `CPU pressure (/proc/pressure/cpu some): before ${p(result.pressureBefore)}, after ${
      p(result.pressureAfter)
    }`,
  );
  return parts.join("\n") + "\n";
}

async function main(args: string[]): Promise<number> {
  const program = createProgram(
    "soak",
    "good and hostile clients against the three servers; RSS, descriptors and fresh-client latency over time",
  );
  let code = EXIT_OK;
  program
    .option("--minutes <n>", "how long", numberOption(0), 10)
    .option("--mode <mode>", "servers' mode: sequential, async, thread or process", "async")
    .addOption(
      new Option("--servers <list>", "comma list of servers").default(SERVER_KINDS.join(",")),
    )
    .option("--good <n>", "good-client loops per server", intOption(0, 100), 4)
    .option("--resets <n>", "reset connections per second per server (python3)", intOption(0), 50)
    .option("--idle <n>", "silent connections held per server", intOption(0, 5000), 100)
    .option("--partial <n>", "half-request connections held per server", intOption(0, 5000), 50)
    .option("--burst <n>", "connections at once every 30 s (python3)", intOption(0, 5000), 500)
    .option("--sample <s>", "seconds between RSS/descriptor samples", numberOption(0), 10)
    .option(
      "--baseline <s>",
      "seconds of good clients alone first (the same-run baseline)",
      numberOption(0, Infinity, true),
      20,
    )
    .option("--logs <dir>", "write each server's output (last 512 KiB) to DIR/<server>-<mode>.log")
    .option("--json", "print one JSON document", false)
    .option("-q, --quiet", "no progress on stderr", false)
    .action(async (opts) => {
      const kinds = String(opts.servers).split(",").map((s) => s.trim()) as ServerKind[];
      for (const kind of kinds) {
        if (!SERVER_KINDS.includes(kind)) {
          throw new UsageError(`Unknown server '${kind}': use ${SERVER_KINDS.join(", ")}`);
        }
      }
      parseMode(opts.mode);
      const python = await havePython();
      if (!python && !opts.quiet) writeStderr("soak: no python3: no resets and no bursts\n");
      const stop = watchStopSignals();
      const started = performance.now();
      try {
        const result = await runSoak({
          kinds,
          mode: opts.mode,
          minutes: opts.minutes,
          good: opts.good,
          resets: python ? opts.resets : 0,
          idle: opts.idle,
          partial: opts.partial,
          burst: python ? opts.burst : 0,
          sampleS: opts.sample,
          baselineS: opts.baseline,
          logs: opts.logs,
          signal: stop.abort,
          log: opts.quiet ? undefined : (line) => writeStderr(`soak: ${line}\n`),
        });
        if (opts.json) {
          writeStdout(
            JSON.stringify(
              jsonDocument("soak", "soak", opts, result, performance.now() - started),
            ) + "\n",
          );
        } else writeStdout(soakText(result));
        code = exitCodeAfter(stop.signal);
      } finally {
        stop.dispose();
      }
    });
  await program.parseAsync(args, { from: "user" });
  return code;
}

if (import.meta.main) await runMain("soak", () => main(toolArgs()));
