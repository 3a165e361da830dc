/**
 * The interarrival study as data: the study's three attempts (clients, server
 * mode, published figures), what `bench --study` runs at each scale, and the
 * study's own table. Pure: no measuring, no printing.
 *
 * @module
 */
import type { ReportTable } from "../shared/report.ts";
import type { StudyScale } from "../shared/study.ts";
import type { Mode } from "../shared/mode.ts";
import { roundMs } from "../shared/clock.ts";
import { moments, parseDistribution } from "./distributions.ts";

/** The seed file the study reproduces. */
export const SEED_FILE = "004_4039e11e3db31957.txt";

/** One of the study's client programs. */
export interface StudyClient {
  workers: number;
  intervals: number;
  dist: "d" | "u" | "e";
  /** The study's parameter (seconds for d and u, rate per second for e). */
  param: number;
}

/** One attempt of the study. */
export interface Scenario {
  attempt: string;
  mode: Mode;
  /** The study's spelling. */
  studyMode: string;
  clients: StudyClient[];
  publishedConnectionMs: number;
  publishedDataMs: number | null;
}

/** A client as the study ran it: workers, intervals, distribution and its parameter. */
function client(workers: number, intervals: number, dist: "d" | "u" | "e", param: number) {
  return { workers, intervals, dist, param };
}

/** The study's three attempts. */
export const SCENARIOS: readonly Scenario[] = [
  {
    attempt: "1: threads, one client",
    mode: "thread",
    studyMode: "thr",
    clients: [client(3, 5, "u", 2.0)],
    publishedConnectionMs: 0.30,
    publishedDataMs: 1033.52,
  },
  {
    attempt: "2: processes, three clients",
    mode: "process",
    studyMode: "proc",
    clients: [client(2, 4, "d", 1.0), client(3, 5, "u", 2.0), client(4, 6, "e", 0.5)],
    publishedConnectionMs: 261.69,
    publishedDataMs: null,
  },
  {
    attempt: "3: iterative, two clients",
    mode: "sequential",
    studyMode: "iter",
    clients: [client(2, 4, "u", 1.0), client(3, 3, "d", 0.5)],
    publishedConnectionMs: 1659.44,
    publishedDataMs: 476.03,
  },
];

/** What `bench --study` runs at one scale. */
export interface StudyPlan {
  scale: StudyScale;
  /** The study's gaps (seconds) are multiplied by this. */
  timeScale: number;
  /** Thread and process attempts give each connection its own worker or child. */
  perConnection: boolean;
  accuracyEvents: number;
  workers: number;
  rate: number;
  seconds: number;
  threads: number;
  /** The UDP precision run: datagrams/s and seconds. */
  udpRate: number;
  udpSeconds: number;
}

/** The plans per scale (smoke for CI, quick for the lab, full at the study's sizes). */
export const PLANS: Readonly<Record<StudyScale, StudyPlan>> = {
  smoke: {
    scale: "smoke",
    timeScale: 0.05,
    perConnection: false,
    accuracyEvents: 150,
    workers: 10,
    rate: 200,
    seconds: 1,
    threads: 2,
    udpRate: 10_000,
    udpSeconds: 1,
  },
  quick: {
    scale: "quick",
    timeScale: 0.2,
    perConnection: true,
    accuracyEvents: 600,
    workers: 40,
    rate: 500,
    seconds: 3,
    threads: 2,
    udpRate: 50_000,
    udpSeconds: 2,
  },
  full: {
    scale: "full",
    timeScale: 1,
    perConnection: true,
    accuracyEvents: 2000,
    workers: 100,
    rate: 1000,
    seconds: 10,
    threads: 2,
    udpRate: 100_000,
    udpSeconds: 10,
  },
};

/** A client's parameter at a time scale (a rate for e, seconds for d and u). */
export function scaledParam(client: StudyClient, scale: number): number {
  return client.dist === "e" ? client.param / scale : client.param * scale;
}

/** The study's clients as command lines. */
export function clientText(clients: readonly StudyClient[]): string {
  return clients.map((c) => `-w ${c.workers} -n ${c.intervals} -d ${c.dist} -p ${c.param}`).join(
    "; ",
  );
}

/** Expected mean data gap (ms) of an attempt at a time scale, weighted by gap counts. */
export function expectedDataMs(clients: readonly StudyClient[], scale: number): number {
  let sum = 0, count = 0;
  for (const c of clients) {
    const spec = parseDistribution(c.dist, [scaledParam(c, scale)]);
    sum += moments(spec).mean * c.workers * c.intervals;
    count += c.workers * c.intervals;
  }
  return sum / count;
}

/** Columns of the published and the measured table. */
export const STUDY_COLUMNS = [
  "attempt",
  "server mode",
  "clients",
  "expected data gap (ms)",
  "avg connection inter-arrival (ms)",
  "avg data inter-arrival (ms)",
];

/** The study's table, transcribed. */
export const PUBLISHED: ReportTable = {
  title: "Published (study, Python on a MacBook Air)",
  columns: STUDY_COLUMNS,
  rows: SCENARIOS.map((s) => [
    s.attempt,
    s.studyMode,
    clientText(s.clients),
    roundMs(expectedDataMs(s.clients, 1)),
    s.publishedConnectionMs,
    s.publishedDataMs,
  ]),
};
