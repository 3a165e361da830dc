/**
 * `taskserver load` as a function: builds the plan, runs it in this isolate or
 * over generator workers (Web Workers or child processes, through
 * `shared/runtime.ts`), relays their progress, stops them on request and merges
 * what they measured into one report. Returns data; never prints.
 *
 * @module
 */
import { spawn, type Spawned } from "../shared/runtime.ts";
import { errorMessage } from "../shared/errors.ts";
import {
  loadEpoch,
  LoadGenerator,
  type LoadGenerator as Generator,
  type LoadProgressMessage,
  type LoadSnapshot,
  type ShareResult,
} from "./load_engine.ts";
import {
  type LoadPlan,
  type LoadShape,
  mixCycle,
  type MixEntry,
  parseMix,
  sharePlan,
  STUDY_PAYLOAD,
} from "./load_plan.ts";
import { serviceOf } from "../shared/registry.ts";
import { registry } from "./registry.ts";
import { buildReport, type LoadReport, type LoadSettings, mergeResults } from "./load_report.ts";

const LOAD_SERVICE = serviceOf(registry, "taskserver.load");

/** Options of {@linkcode runLoad} (the command line's flags, parsed). */
export interface LoadOptions extends LoadShape {
  /** The request mix (see {@linkcode parseMix}). */
  mix: MixEntry[];
  /** Generator workers (0: in this isolate). */
  workers: number;
  workerMode: "thread" | "process";
  /** Module workers start from (default: the light worker entry, or the bundle). */
  entry?: string | URL;
}

/**
 * Options for `port` on 127.0.0.1 with the command line's defaults except one
 * connection, no duration and no request count (set what the run needs).
 */
export function loadOptions(port: number, overrides: Partial<LoadOptions> = {}): LoadOptions {
  return {
    host: "127.0.0.1",
    port,
    connections: 1,
    rate: null,
    pipeline: 1,
    warmupMs: 0,
    durationMs: null,
    requests: null,
    requestsPerConnection: null,
    timeoutMs: 10_000,
    framing: "line",
    mix: parseMix("3"),
    payload: STUDY_PAYLOAD,
    expression: "{n}+1",
    verify: false,
    workers: 0,
    workerMode: "thread",
    ...overrides,
  };
}

/** Progress of a run, for a TTY line. */
export interface LoadProgress extends LoadSnapshot {
  elapsedMs: number;
}

/** Hooks of {@linkcode runLoad}. */
export interface LoadHooks {
  /** Called about twice a second. */
  onProgress?: (progress: LoadProgress) => void;
  /** Aborting stops the run gracefully: what was measured is reported (interrupted). */
  signal?: AbortSignal;
  /** In-process runs: called with each generator before it starts (tests hook samples). */
  onGenerator?: (generator: Generator) => void;
}

/** The settings part of the report for these options. */
export function loadSettings(options: LoadOptions): LoadSettings {
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    target: `${host}:${options.port}`,
    loop: options.rate === null ? "closed" : "open",
    rate: options.rate,
    connections: options.connections,
    pipeline: options.framing === "raw" ? 1 : options.pipeline,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    requests: options.requests,
    requestsPerConnection: options.requestsPerConnection,
    framing: options.framing,
    cycle: mixCycle(options.mix),
    payload: options.payload,
    expression: options.expression,
    verify: options.verify,
    workers: Math.min(options.workers, options.connections),
    workerMode: options.workers === 0 ? "in-process" : options.workerMode,
  };
}

/** The whole run's plan (before it is shared out). */
export function loadPlan(options: LoadOptions, startAt: number): LoadPlan {
  return {
    host: options.host,
    port: options.port,
    connections: options.connections,
    connectionIds: Array.from({ length: options.connections }, (_, i) => i),
    rate: options.rate,
    pipeline: options.framing === "raw" ? 1 : options.pipeline,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
    requests: options.requests,
    requestsPerConnection: options.requestsPerConnection,
    timeoutMs: options.timeoutMs,
    framing: options.framing,
    cycle: mixCycle(options.mix),
    payload: options.payload,
    expression: options.expression,
    verify: options.verify,
    engine: options.engine,
    startAt,
  };
}

/** Runs a load test and returns its report. */
export async function runLoad(options: LoadOptions, hooks: LoadHooks = {}): Promise<LoadReport> {
  const settings = loadSettings(options);
  const measured = options.workers === 0
    ? await runHere(options, hooks)
    : await runWorkers(options, hooks);
  return buildReport(settings, measured);
}

async function runHere(options: LoadOptions, hooks: LoadHooks) {
  // Starts once its connections are open (startAt 0: as soon as prepared).
  const gen = new LoadGenerator(loadPlan(options, 0));
  hooks.onGenerator?.(gen);
  const stop = () => gen.stop();
  hooks.signal?.addEventListener("abort", stop, { once: true });
  const ticker = hooks.onProgress
    ? setInterval(
      () => {
        // Progress counts from the start of sending (gen.t0), once connected.
        if (gen.t0 > 0) {
          hooks.onProgress!({
            ...gen.snapshot(),
            elapsedMs: performance.now() - gen.t0,
          });
        }
      },
      500,
    )
    : undefined;
  try {
    if (hooks.signal?.aborted) gen.stop();
    return await gen.run();
  } finally {
    clearInterval(ticker);
    hooks.signal?.removeEventListener("abort", stop);
  }
}

/** From source, workers start from `worker_entry.ts`; a bundle is its own entry. */
function lightEntry(): URL | undefined {
  return import.meta.url.endsWith(".ts")
    ? new URL("./worker_entry.ts", import.meta.url)
    : undefined;
}

async function runWorkers(options: LoadOptions, hooks: LoadHooks): Promise<ShareResult> {
  const shares = sharePlan(loadPlan(options, 0), options.workers);
  const spawned: Spawned[] = [];
  const snapshots: LoadSnapshot[] = shares.map(() => ({
    sent: 0,
    answered: 0,
    errors: 0,
    p99Us: NaN,
  }));
  try {
    const entry = options.entry ?? lightEntry();
    spawned.push(
      ...await Promise.all(
        shares.map((share, id) =>
          spawn(options.workerMode, { service: LOAD_SERVICE, init: share, id, entry })
        ),
      ),
    );
  } catch (error) {
    for (const s of spawned) s.kill();
    throw new Error(`could not start the generator workers: ${errorMessage(error)}`);
  }
  let ready = 0;
  let allReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => (allReady = resolve));
  for (const [i, s] of spawned.entries()) {
    s.channel.listen((message) => {
      const data = message.data as LoadProgressMessage & { ready?: boolean };
      if (data?.progress) snapshots[i] = data.progress;
      else if (data?.ready && ++ready === spawned.length) allReady();
    });
  }
  const stop = () => {
    for (const s of spawned) s.channel.send({ stop: true });
  };
  hooks.signal?.addEventListener("abort", stop, { once: true });
  // Progress counts from the common start, not from the workers' start-up.
  let runStarted: number | null = null;
  const ticker = hooks.onProgress
    ? setInterval(() => {
      if (runStarted === null) return;
      hooks.onProgress!({
        sent: snapshots.reduce((s, p) => s + p.sent, 0),
        answered: snapshots.reduce((s, p) => s + p.answered, 0),
        errors: snapshots.reduce((s, p) => s + p.errors, 0),
        // The worst worker's p99: an upper bound of the run's until the merge.
        p99Us: Math.max(...snapshots.map((p) => (Number.isNaN(p.p99Us) ? 0 : p.p99Us))),
        elapsedMs: performance.now() - runStarted,
      });
    }, 500)
    : undefined;
  try {
    // Every worker has opened its connections: start them together, shortly.
    const failed = Promise.race(spawned.map((s) => s.done)).then(() => {});
    await Promise.race([readyPromise, failed, aborted(hooks.signal)]);
    if (hooks.signal?.aborted) stop();
    // Lead time for the message to reach every worker, even children on a busy machine.
    const startAt = loadEpoch() + 100;
    for (const s of spawned) s.channel.send({ startAt });
    runStarted = performance.now() + 100;
    const results = await Promise.all(spawned.map((s) => s.done)) as (ShareResult | null)[];
    return mergeResults(results.filter((r): r is ShareResult => r !== null));
  } finally {
    clearInterval(ticker);
    hooks.signal?.removeEventListener("abort", stop);
    for (const s of spawned) s.kill();
  }
}

function aborted(signal?: AbortSignal): Promise<void> {
  if (!signal) return new Promise(() => {});
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}
