/**
 * The in-process load generator for the delay table: N clients at once, each
 * sending one request and waiting for its answer. Registered as a task so that
 * big runs can spread their clients over several isolates: one isolate stalls
 * `Deno.connect` calls beyond ~128 in flight, which would measure the client,
 * not the server.
 *
 * @module
 */
import { BufferedReader } from "../shared/reader.ts";
import { LineOverflow } from "../shared/codec.ts";
import { defineTask, runAll } from "../shared/runner.ts";

/** The study's benchmark payload and its reverse. */
export const BENCH_PAYLOAD = "BenchmarkTestString123";
/** What the server answers to {@linkcode BENCH_PAYLOAD}. */
export const BENCH_REPLY = "321gnirtStseTkramhcneB";

/** One run of N concurrent clients, each sending one request. */
export interface DelayRun {
  clients: number;
  /** Wall time from the first connect to the last answer, in seconds. */
  totalS: number;
  /** Mean time per client, in seconds (as start.sh printed it). */
  averageS: number;
  /** Clients that got no or a wrong answer. */
  errors: number;
}

const encoder = new TextEncoder();

async function oneClient(
  port: number,
  request: Uint8Array,
  raw: boolean,
  timeoutMs: number,
): Promise<{ ms: number; ok: boolean }> {
  const started = performance.now();
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(request);
    const reader = new BufferedReader(conn);
    let reply: string;
    if (raw) {
      const some = await reader.readSome({ timeout: timeoutMs });
      reply = some === null ? "" : new TextDecoder().decode(some);
    } else {
      const line = await reader.readLine(1024, { timeout: timeoutMs });
      reply = line === null || line instanceof LineOverflow ? "" : new TextDecoder().decode(line);
    }
    return { ms: performance.now() - started, ok: reply === BENCH_REPLY };
  } catch {
    return { ms: performance.now() - started, ok: false };
  } finally {
    try {
      conn?.close();
    } catch {
      // Closed.
    }
  }
}

/** N in-process clients at once, each one request (isolates server cost from client start-up). */
async function clientsHere(
  port: number,
  clients: number,
  studyFraming: boolean,
  timeoutMs: number,
): Promise<DelayRun> {
  const request = encoder.encode(studyFraming ? BENCH_PAYLOAD : `3|${BENCH_PAYLOAD}\n`);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, () => oneClient(port, request, studyFraming, timeoutMs)),
  );
  const totalS = (performance.now() - started) / 1000;
  return {
    clients,
    totalS,
    averageS: results.reduce((s, r) => s + r.ms, 0) / clients / 1000,
    errors: results.filter((r) => !r.ok).length,
  };
}

function epoch(): number {
  return performance.timeOrigin + performance.now();
}

interface BatchInput {
  port: number;
  clients: number;
  studyFraming: boolean;
  timeoutMs: number;
  /** Epoch milliseconds at which every isolate starts its clients. */
  startAt: number;
}

interface BatchOutput {
  clients: number;
  sumMs: number;
  errors: number;
  startedAt: number;
  finishedAt: number;
}

/** One isolate's share of the clients, started at a common instant. */
export const clientBatch = defineTask(
  "taskserver.clients",
  async (input: BatchInput): Promise<BatchOutput> => {
    const wait = input.startAt - epoch();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const startedAt = epoch();
    const run = await clientsHere(input.port, input.clients, input.studyFraming, input.timeoutMs);
    return {
      clients: input.clients,
      sumMs: run.averageS * 1000 * input.clients,
      errors: run.errors,
      startedAt,
      finishedAt: startedAt + run.totalS * 1000,
    };
  },
);

/** Clients per isolate above which a run is spread over worker threads. */
export const CLIENTS_PER_ISOLATE = 250;

/**
 * N clients at once, each one request. Up to {@linkcode CLIENTS_PER_ISOLATE}
 * they run in this isolate; above, in up to 4 Web Workers (through
 * `shared/runner.ts`) that start together once all are up. Total time runs from
 * the common start to the last answer.
 */
export async function inProcessClients(
  port: number,
  clients: number,
  studyFraming: boolean,
  timeoutMs: number,
  entry?: string | URL,
): Promise<DelayRun> {
  if (clients <= CLIENTS_PER_ISOLATE) {
    return await clientsHere(port, clients, studyFraming, timeoutMs);
  }
  const isolates = Math.min(4, Math.ceil(clients / CLIENTS_PER_ISOLATE));
  // Leave the workers time to start; a late worker only makes the total longer.
  const startAt = epoch() + 400;
  const shares = Array.from({ length: isolates }, (_, i) => ({
    port,
    clients: Math.floor(clients / isolates) + (i < clients % isolates ? 1 : 0),
    studyFraming,
    timeoutMs,
    startAt,
  }));
  const outcomes = await runAll(clientBatch, shares, {
    mode: "thread",
    workers: isolates,
    entry: entry ?? lightEntry(),
  });
  const results = outcomes.map((o) => {
    if (!("value" in o)) throw new Error("a load-generator worker failed");
    return o.value as BatchOutput;
  });
  const first = Math.min(...results.map((r) => r.startedAt));
  const last = Math.max(...results.map((r) => r.finishedAt));
  return {
    clients,
    totalS: (last - first) / 1000,
    averageS: results.reduce((sum, r) => sum + r.sumMs, 0) / clients / 1000,
    errors: results.reduce((sum, r) => sum + r.errors, 0),
  };
}

/** From source, workers start from `worker_entry.ts`; a bundle is its own entry. */
function lightEntry(): URL | undefined {
  return import.meta.url.endsWith(".ts")
    ? new URL("./old_entry.ts", import.meta.url)
    : undefined;
}
