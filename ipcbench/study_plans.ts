/**
 * The ipcbench study's data: what each scale runs, the study's published table
 * (transcribed from the seed), and the note printed with its figures.
 *
 * @module
 */
import type { ReportTable } from "../shared/report.ts";
import type { StudyScale } from "../shared/study.ts";
import { type BenchOptions, DEFAULT_SIZES } from "./bench.ts";
import type { StreamOptions } from "./stream.ts";
import { TRANSPORT_NAMES } from "./transports.ts";

/** Why the study's figure and the wall-time figures differ (printed with every study table). */
export const CPU_VS_WALL_NOTE =
  "The study divided by time.process_time(), the parent's CPU time. While the parent waits " +
  "for its child it is asleep and uses no CPU, so per CPU-second it appears to do more round " +
  "trips than it does per second of wall time; with threads, the CPU time of the whole process " +
  "also counts the other side. transfers/2/cpu is the study's figure (round trips per CPU " +
  "second of the parent process); rt/s and one-way/s are per second of wall time.";

// The study's sample run (Windows, 4 cores), transcribed from the seed.
export const PUBLISHED = {
  high: [3479, 3442, 2857],
  low: [11431, 8650, 8650],
};

/** The study's own table. */
export function publishedTable(): ReportTable {
  return {
    title: "Published (Windows, 4 cores, Python): transfers/2/process_time",
    columns: ["run", "High Level (queue)", "Low Level (socket)"],
    rows: PUBLISHED.high.map((high, i) => [i + 1, high, PUBLISHED.low[i]]),
  };
}

const SOCKET_STREAMS: StreamOptions["transports"] = [
  "pipes",
  "channel-unix",
  "channel-shm",
  "tcp",
  "unix",
];

/** The scale presets of `bench --study`. */
export interface StudyScalePlan {
  studyRoundTrips: number;
  repeats: number;
  matrix: Omit<BenchOptions, "entry" | "onProgress" | "timeoutMs">;
  pythonRoundTrips: number;
  /** One-way streams (and latency under load) over the child channel kinds and sockets. */
  stream: Omit<StreamOptions, "entry" | "onProgress" | "timeoutMs">;
}

/** What each scale runs (smoke ≤ 20 s, quick ≤ 45 s, full = the study's sizes and more). */
export const STUDY_PLANS: Readonly<Record<StudyScale, StudyScalePlan>> = {
  smoke: scalePlan({
    roundTrips: 5000,
    matrix: { sizes: [64], roundTrips: 1000, warmup: 100, runs: 1, pins: ["none"] },
    stream: {
      transports: ["pipes", "channel-unix", "channel-shm"],
      sizes: [4096],
      messages: 2000,
      runs: 1,
      pins: ["none"],
    },
    maxBytes: 16 << 20,
  }),
  quick: scalePlan({
    roundTrips: 10000,
    matrix: { sizes: [64, 65536], roundTrips: 1500, warmup: 200, runs: 3, pins: ["same", "split"] },
    stream: {
      transports: SOCKET_STREAMS,
      sizes: [64, 65536],
      messages: 10000,
      runs: 3,
      pins: ["same", "split"],
    },
    maxBytes: 32 << 20,
  }),
  full: scalePlan({
    roundTrips: 10000,
    matrix: {
      sizes: [...DEFAULT_SIZES],
      roundTrips: 10000,
      warmup: 1000,
      warmupMs: 1000,
      runs: 5,
      pins: ["same", "split", "none"],
    },
    stream: {
      transports: SOCKET_STREAMS,
      sizes: [64, 4096, 65536, 1048576],
      messages: 50000,
      runs: 5,
      pins: ["same", "split"],
    },
    maxBytes: 256 << 20,
  }),
};

/** The plan of one scale. */
export function studyScalePlan(scale: StudyScale): StudyScalePlan {
  return STUDY_PLANS[scale];
}

/** What differs between scales; the rest is the same at every scale. */
interface ScaleChoices {
  /** Round trips of the study's cases and of its Python program. */
  roundTrips: number;
  matrix: Pick<
    StudyScalePlan["matrix"],
    "sizes" | "roundTrips" | "warmup" | "warmupMs" | "runs" | "pins"
  >;
  stream: Pick<StudyScalePlan["stream"], "transports" | "sizes" | "messages" | "runs" | "pins">;
  /** Bytes one direction may carry per run, in the matrix and the streams. */
  maxBytes: number;
}

function scalePlan(choices: ScaleChoices): StudyScalePlan {
  return {
    studyRoundTrips: choices.roundTrips,
    repeats: 3,
    pythonRoundTrips: choices.roundTrips,
    stream: { ...choices.stream, maxBytes: choices.maxBytes, pingEvery: 100, window: 64 },
    matrix: {
      transports: [...TRANSPORT_NAMES],
      ...choices.matrix,
      maxBytes: choices.maxBytes,
      anchors: true,
    },
  };
}
