/**
 * `taskserver bench`'s measurements, and nothing else: the delay table (N
 * clients against a server that answers after `--delay`, from the in-process
 * load generator or as processes through `start.sh`), the throughput runs
 * (`bench_throughput.ts`), and the seed study's measurements
 * ({@linkcode measureStudy}). Plans and published data are in
 * `study_plans.ts`, the tables and findings in `study_report.ts`, the study
 * itself in `study.ts`.
 *
 * Every server runs as its own process (`taskserver serve`, or python3), so the
 * load generator in this process never shares an event loop with it.
 *
 * @module
 */
import { selfCommand, timedRun } from "../shared/peer.ts";
import type { StudyContext } from "../shared/study_harness.ts";
import type { Mode } from "../shared/mode.ts";
import type { EngineChoice } from "./ffi_libc.ts";
import {
  BENCH_PAYLOAD,
  BENCH_REPLY,
  type DelayRun,
  inProcessClients,
  type ThroughputRun,
} from "./load_bench.ts";
import {
  defaultEntry,
  havePython,
  launch,
  PYTHON_MAX_CLIENTS,
  type ServerSpec,
} from "./bench_servers.ts";
import { cpuPressure, generatorCeiling, throughputTable } from "./bench_throughput.ts";
import {
  BIG_SERVERS,
  PYTHON_STUDY_SERVERS,
  PYTHON_THREAD_LINES,
  STUDY_SERVERS,
  type StudyPlan,
  THROUGHPUT_SERVERS,
} from "./study_plans.ts";
import type { BenchRaw, DelayCell, StudyRaw } from "./study_report.ts";

export { BENCH_PAYLOAD, type DelayCell, type DelayRun, type ThroughputRun };
export {
  defaultEntry,
  havePython,
  launch,
  type LaunchedServer,
  PYTHON_MAX_CLIENTS,
  type ServerSpec,
} from "./bench_servers.ts";
export { launchPythonServer, launchTaskServer, PYTHON_SERVER } from "./bench_servers.ts";
export { generatorCeiling, processTreeCpuMs, throughputTable } from "./bench_throughput.ts";

/** The repository's `start.sh` (next to `taskserver/` and `dist/`), if it is there. */
export function startScript(entry = defaultEntry()): string | null {
  try {
    const path = new URL("../start.sh", entry.startsWith("file:") ? entry : `file://${entry}`)
      .pathname;
    return Deno.statSync(path).isFile ? path : null;
  } catch {
    return null;
  }
}

/** Parses what `start.sh` prints: total, average per script, and failures. */
export function parseStartSh(text: string, clients: number): DelayRun {
  const number = (pattern: RegExp) => {
    const match = pattern.exec(text);
    if (!match) throw new Error(`start.sh printed no ${pattern.source.split(":")[0]}`);
    return Number(match[1]);
  };
  return {
    clients,
    totalS: number(/Total Execution Time: ([\d.]+) seconds/),
    averageS: number(/Average Execution Time per script: ([\d.]+) seconds/),
    errors: number(/Failed: (\d+) of/),
  };
}

async function viaStartSh(script: string, clients: number, argv: string[]): Promise<DelayRun> {
  const out = await new Deno.Command("bash", {
    args: [script, String(clients), ...argv],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return parseStartSh(new TextDecoder().decode(out.stdout), clients);
}

/**
 * N client processes at once, through the repository's `start.sh` as in the
 * study (or started directly when it is not there): each is
 * `taskserver call reverse BenchmarkTestString123` (or python3 with the study's client).
 */
export async function processClients(
  port: number,
  clients: number,
  studyFraming: boolean,
  entry = defaultEntry(),
): Promise<DelayRun> {
  const command = studyFraming
    ? {
      command: "python3",
      args: [
        "-c",
        "import socket,sys\ns=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n" +
        `s.sendall(b'${BENCH_PAYLOAD}')\nr=s.recv(1024).decode()\nprint('Received:',r)\n` +
        `sys.exit(0 if r=='${BENCH_REPLY}' else 1)`,
        String(port),
      ],
    }
    : selfCommand(["call", "reverse", BENCH_PAYLOAD, `--port=${port}`, "--timeout=120000"], {
      entry,
    });
  const script = startScript(entry);
  if (script) return await viaStartSh(script, clients, [command.command, ...command.args]);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, async () => {
      const run = await timedRun(command.command, command.args);
      return { ms: run.ms, ok: run.success };
    }),
  );
  return {
    clients,
    totalS: (performance.now() - started) / 1000,
    averageS: results.reduce((s, r) => s + r.ms, 0) / clients / 1000,
    errors: results.filter((r) => !r.ok).length,
  };
}

/** The server designs the table compares. */
export function serverSpecs(
  modes: readonly Mode[],
  perClient: boolean,
  workers: number,
  engine?: EngineChoice,
): ServerSpec[] {
  const specs: ServerSpec[] = [];
  for (const mode of modes) {
    if (mode === "sequential") specs.push({ label: "sequential", kind: "taskserver", mode });
    else if (mode === "async") specs.push({ label: "async", kind: "taskserver", mode });
    else {
      if (perClient) {
        specs.push({ label: `${mode} per client`, kind: "taskserver", mode, perClient: true });
      }
      specs.push({ label: `${mode} pool`, kind: "taskserver", mode, workers });
    }
  }
  return engine === undefined ? specs : specs.map((spec) => ({ ...spec, engine }));
}

/** Options of the free-form `bench` (without `--study`). */
export interface BenchOptions {
  modes: Mode[];
  clients: number[];
  delayMs: number;
  workers: number;
  perClient: boolean;
  inProcess: boolean;
  throughput: number[];
  durationMs: number;
  python: boolean;
  /** Generator workers for the throughput runs (0: the bench's own isolate). */
  generatorWorkers?: number;
  /** Engine of our servers and of the delay table's clients (default auto). */
  engine?: EngineChoice;
  entry?: string;
  /** One progress line per run. */
  onProgress?: (line: string) => void;
  /** Stops the measurements; what was measured before is returned. */
  signal?: AbortSignal;
}

/** Options of {@linkcode delayTable}. */
export interface DelayTableOptions {
  inProcess: boolean;
  entry?: string;
  onProgress?: (line: string) => void;
  /** Skip sequential runs longer than this (its total is N × delay by design). */
  sequentialMaxMs?: number;
  /** Stops the measurements; a run cut short is left out. */
  signal?: AbortSignal;
  /** Engine of the in-process clients (default auto). */
  engine?: EngineChoice;
}

/** Measures the delay table for the given servers and client counts. */
export async function delayTable(
  specs: readonly ServerSpec[],
  clients: number[],
  delayMs: number,
  options: DelayTableOptions,
): Promise<{ cells: DelayCell[]; skipped: string[] }> {
  const cells: DelayCell[] = [];
  const skipped: string[] = [];
  const stopped = () => options.signal?.aborted === true;
  for (const spec of specs) {
    if (stopped()) break;
    const server = await launch(spec, delayMs, options.entry);
    try {
      for (const n of clients) {
        const sequentialLike = spec.mode === "sequential";
        if (
          sequentialLike && options.sequentialMaxMs !== undefined &&
          n * delayMs > options.sequentialMaxMs
        ) {
          skipped.push(
            `${spec.label} with ${n} clients: would take ${(n * delayMs / 1000).toFixed(0)} s ` +
              `(N × delay by design)`,
          );
          continue;
        }
        const study = spec.kind === "python" && spec.framing === "study";
        // Sequential answers one client per delay; the others answer within one delay.
        const timeoutMs = (sequentialLike ? n * delayMs : delayMs) + 60_000;
        const run = options.inProcess
          ? await inProcessClients(server.port, n, study, timeoutMs, options.signal, options.engine)
          : await processClients(server.port, n, study, options.entry);
        if (stopped()) break;
        run.server = spec.kind === "python" ? "python" : server.engine;
        options.onProgress?.(
          `${spec.label.padEnd(20)} ${String(n).padStart(6)} clients: total ${
            run.totalS.toFixed(3)
          } s, average ${run.averageS.toFixed(3)} s, errors ${run.errors}` +
            ` (engines: server ${run.server ?? "?"}, generator ${run.generator ?? "processes"})`,
        );
        cells.push({
          server: spec.label,
          clientsFrom: options.inProcess ? "in-process" : "processes",
          run,
        });
      }
    } finally {
      await server.stop();
    }
  }
  return { cells, skipped };
}

/** Runs the free-form benchmark's measurements (tables: `study_report.ts` benchReport). */
export async function measureBench(options: BenchOptions): Promise<BenchRaw> {
  const specs = serverSpecs(options.modes, options.perClient, options.workers, options.engine);
  const pythonOk = options.python && (await havePython());
  const delay = options.clients.length > 0
    ? await delayTable(specs, options.clients, options.delayMs, options)
    : { cells: [], skipped: [] };
  const pythonClients = options.clients.filter((n) => n <= PYTHON_MAX_CLIENTS);
  if (pythonOk && pythonClients.length > 0) {
    const py = await delayTable(PYTHON_STUDY_SERVERS, pythonClients, options.delayMs, {
      ...options,
      sequentialMaxMs: undefined,
    });
    delay.cells.push(...py.cells);
  }
  if (pythonOk && pythonClients.length < options.clients.length) {
    delay.skipped.push(`the Python servers above ${PYTHON_MAX_CLIENTS} clients`);
  }
  const throughputSpecs = specs.filter((s) => s.mode !== "sequential" && !s.perClient);
  if (pythonOk) throughputSpecs.push(PYTHON_THREAD_LINES);
  const runs = options.throughput.length > 0
    ? await throughputTable(throughputSpecs, options.throughput, options.durationMs, options)
    : [];
  if (options.throughput.length > 0) {
    const ceiling = await generatorCeiling(options.durationMs, options);
    if (ceiling) runs.push(ceiling);
  }
  return {
    delay: delay.cells,
    skipped: delay.skipped,
    throughput: runs,
    pressure: cpuPressure(),
    interrupted: options.signal?.aborted === true,
  };
}

/**
 * The seed study's measurements at a plan: the main table (the study's designs
 * and ours), the study's Python servers, many clients, clients as processes,
 * and no-delay throughput. Raw numbers only (the report: `study_report.ts`).
 */
export async function measureStudy(
  plan: StudyPlan,
  context: StudyContext,
  entry?: string,
): Promise<StudyRaw> {
  const pythonOk = await havePython();
  const common = { entry, onProgress: context.progress, signal: context.signal };
  const main = await delayTable(STUDY_SERVERS, plan.clients, plan.delayMs, {
    ...common,
    inProcess: true,
    sequentialMaxMs: plan.sequentialMaxMs,
  });
  const python = pythonOk
    ? (await delayTable(PYTHON_STUDY_SERVERS, plan.clients, plan.delayMs, {
      ...common,
      inProcess: true,
    })).cells
    : null;
  const big: DelayCell[] = [];
  const pythonBig = plan.bigClients.filter((n) => n <= PYTHON_MAX_CLIENTS);
  if (plan.bigClients.length > 0) {
    big.push(
      ...(await delayTable(BIG_SERVERS, plan.bigClients, plan.delayMs, {
        ...common,
        inProcess: true,
      })).cells,
    );
    if (pythonOk && pythonBig.length > 0) {
      big.push(
        ...(await delayTable([PYTHON_STUDY_SERVERS[1]], pythonBig, plan.delayMs, {
          ...common,
          inProcess: true,
        })).cells,
      );
    }
  }
  const processes = plan.processClients.length > 0
    ? (await delayTable([BIG_SERVERS[0]], plan.processClients, plan.delayMs, {
      ...common,
      inProcess: false,
    })).cells
    : [];
  const throughput = await throughputTable(
    [...THROUGHPUT_SERVERS, ...(pythonOk ? [PYTHON_THREAD_LINES] : [])],
    plan.throughputClients,
    plan.durationMs,
    common,
  );
  return {
    main: main.cells,
    mainSkipped: main.skipped,
    python,
    big,
    bigPythonSkipped: pythonOk && pythonBig.length < plan.bigClients.length,
    processes,
    throughput,
    interrupted: context.signal?.aborted === true,
  };
}
