/**
 * The benchmark's measurements, taken with the `taskserver load` generator so
 * that `bench` and `load` report the same figures: the delay table's N clients
 * (each connects, sends one request, waits for its answer: the study's clients)
 * and the no-delay throughput runs (persistent clients, closed loop).
 *
 * @module
 */
import { HdrHistogram } from "../shared/hdr_histogram.ts";
import { type LoadOptions, loadOptions, loadPlan, runLoad } from "./load.ts";
import { generatorEngine } from "./load_engine.ts";
import type { EngineChoice } from "./ffi_libc.ts";
import { STUDY_PAYLOAD } from "./load_plan.ts";
import type { LoadReport } from "./load_report.ts";

/** The study's benchmark payload. */
export const BENCH_PAYLOAD = STUDY_PAYLOAD;
/** What the server answers to {@linkcode BENCH_PAYLOAD}. */
export const BENCH_REPLY = "321gnirtStseTkramhcneB";

/** One run of N concurrent clients, each sending one request. */
export interface DelayRun {
  clients: number;
  /** Wall time from the first connect to the last answer, in seconds. */
  totalS: number;
  /** Mean time per client (connect, then its answer), in seconds (as start.sh printed it). */
  averageS: number;
  /** Clients that got no or a wrong answer. */
  errors: number;
  /** The generator's engine (`ffi`: libc sockets, `deno`: Deno.connect). */
  generator?: string;
  /** The server's engine, when the bench started it. */
  server?: string;
}

/** Clients per generator isolate in the delay table (more in one isolate measure the client). */
export const CLIENTS_PER_ISOLATE = 2500;

function benchOptions(port: number, overrides: Partial<LoadOptions>): LoadOptions {
  return loadOptions(port, { timeoutMs: 60_000, verify: true, ...overrides });
}

/**
 * N clients at once, each one request over its own connection (checked against
 * {@linkcode BENCH_REPLY}). On the FFI engine all of them run in this isolate;
 * on `Deno.connect`, above {@linkcode CLIENTS_PER_ISOLATE} they spread over
 * generator workers that start together.
 */
export async function inProcessClients(
  port: number,
  clients: number,
  studyFraming: boolean,
  timeoutMs: number,
  signal?: AbortSignal,
  engine: EngineChoice = "auto",
): Promise<DelayRun> {
  const options = benchOptions(port, {
    connections: clients,
    requestsPerConnection: 1,
    timeoutMs,
    framing: studyFraming ? "raw" : "line",
    engine,
  });
  if (clients > CLIENTS_PER_ISOLATE && generatorEngine(loadPlan(options, 0)) === "deno") {
    options.workers = Math.min(4, Math.ceil(clients / CLIENTS_PER_ISOLATE));
  }
  const report = await runLoad(options, { signal });
  const m = report.measured;
  const connectUs = HdrHistogram.fromJSON(m.connect);
  const latencyUs = HdrHistogram.fromJSON(m.latency);
  return {
    clients,
    totalS: (m.endedAt - m.startedAt) / 1000,
    averageS: (connectUs.mean * connectUs.count + latencyUs.mean * latencyUs.count) / 1e6 /
      clients,
    errors: clients - m.answered + m.errorReplies,
    generator: m.engine,
  };
}

/** One throughput run: persistent clients, no delay, as many requests as they can. */
export interface ThroughputRun {
  server: string;
  clients: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  errors: number;
  /** Generator workers and requests in flight per connection. */
  workers: number;
  pipeline: number;
  /** Server CPU time per answer, in µs (filled by the bench from /proc), or null. */
  serverCpuUs: number | null;
}

/** `clients` persistent connections send `3|payload` in a closed loop for `durationMs`. */
export async function throughput(
  server: string,
  port: number,
  clients: number,
  durationMs: number,
  options: { workers?: number; pipeline?: number; signal?: AbortSignal } = {},
): Promise<ThroughputRun> {
  const workers = options.workers ?? 0;
  const pipeline = options.pipeline ?? 1;
  const report: LoadReport = await runLoad(
    benchOptions(port, {
      connections: clients,
      durationMs,
      warmupMs: 200,
      timeoutMs: 10_000,
      pipeline,
      workers,
      // Checking every answer costs the generator; the error prefix is enough here.
      verify: false,
    }),
    { signal: options.signal },
  );
  const s = report.summary;
  return {
    server,
    clients,
    requests: s.answered,
    rps: Math.round(s.answered / (durationMs / 1000)),
    p50Ms: s.latencyMs.p50,
    p99Ms: s.latencyMs.p99,
    p999Ms: s.latencyMs.p999,
    maxMs: s.latencyMs.max,
    errors: s.errors,
    workers,
    pipeline,
    serverCpuUs: null,
  };
}
