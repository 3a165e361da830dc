/**
 * The task-server study as data: what `taskserver bench --study` runs at each
 * scale, the server designs it compares, and the study's published table
 * (seed 003). No code runs here; `study_report.ts` turns measurements into the
 * report and `bench.ts` measures.
 *
 * @module
 */
import type { ReportTable } from "../shared/report.ts";
import type { StudyScale } from "../shared/study.ts";
import type { ServerSpec } from "./bench_servers.ts";

/** What the study runs at one scale. */
export interface StudyPlan {
  /** The server's delay before each answer. */
  delayMs: number;
  /** Client counts of the main table. */
  clients: number[];
  /** Sequential runs longer than this are skipped (N × delay by design). */
  sequentialMaxMs: number;
  /** Client counts of the many-clients table (async and the pools). */
  bigClients: number[];
  /** Persistent clients of the no-delay throughput table. */
  throughputClients: number[];
  /** Length of each throughput run. */
  durationMs: number;
  /** Client counts of the clients-as-processes table (start.sh). */
  processClients: number[];
}

/**
 * The study's Python servers run up to this many clients: their listen(128)
 * queue overflows, and 10,000 threads or forks take minutes to settle here.
 */
export const PYTHON_MAX_CLIENTS = 1000;

/** The plan of each scale. */
export const PLANS: Readonly<Record<StudyScale, StudyPlan>> = {
  smoke: {
    delayMs: 200,
    clients: [5, 10],
    sequentialMaxMs: 4000,
    bigClients: [],
    throughputClients: [10],
    durationMs: 400,
    processClients: [],
  },
  quick: {
    delayMs: 500,
    clients: [10, 20, 50],
    sequentialMaxMs: 5_000,
    bigClients: [1000],
    throughputClients: [100],
    durationMs: 500,
    processClients: [10],
  },
  full: {
    delayMs: 3000,
    clients: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
    sequentialMaxMs: Infinity,
    bigClients: [1000, 10_000],
    throughputClients: [1, 10, 100, 1000],
    durationMs: 2000,
    processClients: [10, 50, 100],
  },
};

/** The designs of the main table: the study's three, then ours. */
export const STUDY_SERVERS: readonly ServerSpec[] = [
  { label: "sequential", kind: "taskserver", mode: "sequential" },
  { label: "process per client", kind: "taskserver", mode: "process", perClient: true },
  { label: "thread per client", kind: "taskserver", mode: "thread", perClient: true },
  { label: "async", kind: "taskserver", mode: "async" },
  { label: "thread pool", kind: "taskserver", mode: "thread", workers: 2 },
  { label: "process pool", kind: "taskserver", mode: "process", workers: 2 },
];

/** Column names of the measured table, matching the published one first. */
export const MEASURED_COLUMNS = [
  "Clients",
  "Single-Process = sequential (s)",
  "Multi-Process = process per client (s)",
  "Multi-Threaded = thread per client (s)",
  "async (s)",
  "thread pool (s)",
  "process pool (s)",
];

/** The study's own Python servers, with its benchmark framing. */
export const PYTHON_STUDY_SERVERS: readonly ServerSpec[] = [
  { label: "python fork", kind: "python", python: "fork", framing: "study" },
  { label: "python thread", kind: "python", python: "thread", framing: "study" },
];

/** The designs of the many-clients table. */
export const BIG_SERVERS: readonly ServerSpec[] = [
  { label: "async", kind: "taskserver", mode: "async" },
  { label: "thread pool", kind: "taskserver", mode: "thread", workers: 2 },
  { label: "process pool", kind: "taskserver", mode: "process", workers: 2 },
];

/** The designs of the throughput table (Python's thread server is added when present). */
export const THROUGHPUT_SERVERS: readonly ServerSpec[] = [
  { label: "async", kind: "taskserver", mode: "async" },
  { label: "process pool", kind: "taskserver", mode: "process", workers: 2 },
];

/** Python's thread-per-client server with line framing (the throughput baseline). */
export const PYTHON_THREAD_LINES: ServerSpec = {
  label: "python thread",
  kind: "python",
  python: "thread",
};

/** The study's published table (seed 003), total execution time in seconds. */
export const PUBLISHED: ReportTable = {
  title: "Published: total execution time (s), 3 s delay, clients from start.sh",
  columns: ["Clients", "Single-Process (s)", "Multi-Process (s)", "Multi-Threaded (s)"],
  rows: [
    [10, 30.023681, 3.027398, 3.032718],
    [20, 60.036497, 3.055609, 3.044437],
    [30, 90.053178, 3.078539, 3.067425],
    [40, 120.071838, 3.078338, 3.088482],
    [50, 150.070198, 3.121362, 3.106144],
    [60, 180.100327, 3.106676, 3.142782],
    [70, 210.093805, 3.190848, 3.148112],
    [80, 240.123101, 3.164202, 3.212299],
    [90, 270.166767, 3.220507, 3.189932],
    [100, 300.163465, 3.229689, 3.202745],
  ],
};
