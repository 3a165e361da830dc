/**
 * The seed study of `transfer` (`001_1aecf54b52870d4c.txt`) as a
 * `Study<Plan, Raw>` of shared/study_harness.ts: what to run at each scale, the
 * study's own table, and a pure `report` that turns raw numbers into the tables,
 * plots and sentences of the lab's transfer section. The measurements are in
 * bench.ts (`measureStudy`), loaded only when a study runs.
 *
 * @module
 */
import type { Study, StudyFindings } from "../shared/study_harness.ts";
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyScale } from "../shared/study.ts";
import { DEFAULT_BLOCK_SIZE, formatSize } from "./protocol.ts";

/** Blocks of the study's experiment: 515 blocks of 20480 bytes. */
export const STUDY_BLOCKS = 515;

/** What one scale runs. */
export interface TransferPlan {
  /** Runs per mode (the median is reported). */
  runs: number;
  /** Runs per size of the size sweep. */
  sweepRuns: number;
  /** Connections in thread and process modes. */
  streams: number;
  /** Blocks in flight in async mode. */
  window: number;
  /** Sizes of the course-compatible comparison, with the facts sheet's seconds (§10). */
  reference: [number, number][];
  /** Bytes of the default upload timed against dd and md5sum. */
  defaultUploadBytes: number;
  /** Bytes of the large uploads (full scale only), or null. */
  bigBytes: number | null;
}

/** The facts sheet's measured figures for the course's Python server and client (§10). */
const PYTHON_REFERENCE: [number, number][] = [[1e6, 0.0154], [1e7, 0.161], [1e8, 2.555]];

/** The plans per scale. */
export const TRANSFER_PLANS: Readonly<Record<StudyScale, TransferPlan>> = {
  smoke: {
    runs: 1,
    sweepRuns: 5,
    streams: 2,
    window: 8,
    reference: PYTHON_REFERENCE.filter(([size]) => size <= 1e7),
    defaultUploadBytes: 16 << 20,
    bigBytes: null,
  },
  quick: {
    runs: 3,
    sweepRuns: 5,
    streams: 2,
    window: 8,
    reference: PYTHON_REFERENCE,
    defaultUploadBytes: 128 << 20,
    bigBytes: null,
  },
  full: {
    runs: 5,
    sweepRuns: 10,
    streams: 2,
    window: 8,
    reference: PYTHON_REFERENCE,
    defaultUploadBytes: 1 << 30,
    bigBytes: 1 << 30,
  },
};

/** The default upload against the disk and hash ceilings, same run. */
export interface CeilingRaw {
  bytes: number;
  /** `fast` or `lockstep`: the plan the default upload took. */
  plan: string;
  ddSeconds: number;
  md5sumSeconds: number;
  uploadSeconds: number;
}

/** What `measureStudy` returns: milliseconds and megabytes only. */
export interface TransferRaw {
  /** Median ms of the 515-block upload per mode. */
  modeMs: Record<"sequential" | "async" | "thread" | "process", number>;
  /** Median ms of a raw TCP copy of the same bytes. */
  rawMs: number;
  /** The size sweep: bytes and median ms. */
  sweep: number[];
  sweepMs: number[];
  /** Per reference size: our sequential ms, and the Python STEP peer's (null without python3). */
  referenceMs: number[];
  pythonMs: (number | null)[];
  /** The largest reference size on `streams` connections (thread mode), or null. */
  multi: { size: number; sequentialMs: number; threadMs: number } | null;
  ceiling: CeilingRaw | null;
  /** Full scale: the large uploads, the raw copy of the same bytes, the server's peak RSS. */
  big: { mode: string; ms: number }[];
  bigRawMs: number;
  bigRssMb: number | null;
  /** Parts not measured, with their reasons. */
  skipped: string[];
  /** CPU pressure (some avg10, %) at the end of the run, or null. */
  cpuPressure: number | null;
}

/** The study's ten file sizes, 9.5 KB to 976.6 KB (KiB as the study wrote them). */
export function studySweepSizes(): number[] {
  return Array.from({ length: 10 }, (_, i) => Math.round((9.5 + (i * (976.6 - 9.5)) / 9) * 1024));
}

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

const mbps = (bytes: number, ms: number) => round(bytes / 1e6 / (ms / 1000), 1);

function linearFit(xs: number[], ys: number[]): { slope: number; intercept: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return {
    slope,
    intercept: my - slope * mx,
    r2: syy === 0 || sxx === 0 ? 1 : (sxy * sxy) / (sxx * syy),
  };
}

/** "2.3× faster than" or "1.5× slower than", from a time ratio (theirs / ours). */
function speedPhrase(ratio: number): string {
  return ratio >= 1 ? `${round(ratio, 1)}× faster than` : `${round(1 / ratio, 1)}× slower than`;
}

/** The study's own table (section VI and Fig. 8–9; it printed no numbers). */
export const TRANSFER_PUBLISHED: ReportTable = {
  title: "Published (the study's section VI and Fig. 8–9; no numbers were printed)",
  columns: ["approach", "workload", "result"],
  rows: [
    ["single thread (loop)", "515 blocks of 20480 B", "fastest; kept as the final client"],
    ["multithreading (thread pool)", "515 blocks of 20480 B", "not faster (GIL or server limits)"],
    ["multiprocessing (pool of 8)", "515 blocks of 20480 B", "not faster"],
    ["several TCP connections", "large files", "faster for large files, not for small ones"],
    ["upload time vs size", "10 files, 9.5–976.6 KB", "linear in size below 1 MB"],
  ],
};

function ceilingTable(c: CeilingRaw): ReportTable {
  const slower = Math.max(c.ddSeconds, c.md5sumSeconds);
  const rate = (s: number) => round(c.bytes / 1e6 / s, 1);
  return {
    title: `Default upload (${c.plan} plan) against the disk and hash ceilings, ` +
      `${formatSize(c.bytes)} (target: at least 0.8 of the slower)`,
    columns: ["what", "seconds", "MB/s", "× slower of dd and md5sum"],
    rows: [
      [
        "dd conv=fdatasync",
        round(c.ddSeconds, 3),
        rate(c.ddSeconds),
        round(slower / c.ddSeconds, 2),
      ],
      [
        "md5sum",
        round(c.md5sumSeconds, 3),
        rate(c.md5sumSeconds),
        round(slower / c.md5sumSeconds, 2),
      ],
      [
        "transfer upload (default, MD5 verified, stored durably)",
        round(c.uploadSeconds, 3),
        rate(c.uploadSeconds),
        round(slower / c.uploadSeconds, 2),
      ],
    ],
  };
}

function bigTable(raw: TransferRaw, bytes: number): ReportTable {
  const gbps = (ms: number) => round(bytes / 1e9 / (ms / 1000), 2);
  // The full scale's size (bigBytes) is 1 GiB: the title names it as the study does.
  return {
    title: "1 GiB upload, stored on disk, MD5 verified end to end",
    columns: ["mode", "seconds", "GB/s", "× raw TCP copy", "server peak RSS (MB)"],
    rows: [
      [
        "raw TCP copy to disk (ceiling)",
        round(raw.bigRawMs / 1000, 2),
        gbps(raw.bigRawMs),
        1,
        null,
      ],
      ...raw.big.map((b) => [
        b.mode,
        round(b.ms / 1000, 2),
        gbps(b.ms),
        round(raw.bigRawMs / b.ms, 2),
        raw.bigRssMb,
      ]),
    ],
  };
}

function plotsOf(raw: TransferRaw, plan: TransferPlan): LinePlot[] {
  return [
    {
      title: "Upload time by file size (sequential)",
      xLabel: "file size (KB)",
      yLabel: "ms",
      points: raw.sweep.map((size, i) => ({
        x: size / 1024,
        y: round(raw.sweepMs[i], 2),
        series: "measured",
      })),
    },
    {
      title: "Course-compatible upload throughput by file size",
      xLabel: "file size (MB)",
      yLabel: "MB/s",
      xLog: true,
      points: plan.reference.flatMap(([size, facts], i) => [
        { x: size / 1e6, y: mbps(size, raw.referenceMs[i]), series: "ours, sequential" },
        { x: size / 1e6, y: mbps(size, facts * 1000), series: "course's Python pair (facts §10)" },
        ...(raw.pythonMs[i] === null
          ? []
          : [{ x: size / 1e6, y: mbps(size, raw.pythonMs[i]!), series: "Python STEP peer, here" }]),
      ]),
    },
  ];
}

function findingsOf(raw: TransferRaw, plan: TransferPlan): string[] {
  const { streams, window, reference } = plan;
  const studySize = STUDY_BLOCKS * DEFAULT_BLOCK_SIZE;
  const seq = raw.modeMs.sequential;
  const rate = (ms: number) => mbps(studySize, ms);
  const parallelBest = Math.min(raw.modeMs.thread, raw.modeMs.process);
  const parallelRatio = round(seq / parallelBest, 2);
  const last = reference.length - 1;
  const multi = raw.multi;
  const multiRatio = multi ? round(multi.sequentialMs / multi.threadMs, 2) : null;
  const fit = linearFit(raw.sweep.map((s) => s / 1e6), raw.sweepMs);
  const pressure = raw.cpuPressure;
  const loadNote = pressure !== null && pressure >= 20
    ? ` (CPU pressure ${pressure}% from other work during the run)`
    : "";
  const parallelSentence = parallelRatio < 1.1
    ? `Agrees with the study on small files: 515 blocks took ${round(seq, 1)} ms on one ` +
      `lockstep connection and the best of threads or processes (${streams} connections) was ` +
      `${parallelRatio}× as fast, since starting workers costs ` +
      `${parallelRatio < 0.9 ? "more than" : "about what"} splitting 10.5 MB saves`
    : `Disagrees with the study on small files: with a server that is not GIL-bound, ` +
      `${streams} connections uploaded 515 blocks ${parallelRatio}× as fast as one lockstep ` +
      `connection (${round(parallelBest, 1)} vs ${round(seq, 1)} ms)`;
  const multiSentence = multi === null
    ? "."
    : multiRatio! >= 1.1
    ? `; for ${formatSize(multi.size)} ${streams} connections were ${multiRatio}× as fast, ` +
      `agreeing that several connections help large files.`
    : `; even for ${formatSize(multi.size)} ${streams} connections were only ${multiRatio}× ` +
      `as fast: worker start-up and two ends sharing two cores eat the gain.`;
  const pythonHere = last >= 0 ? raw.pythonMs[last] : null;
  const linear = fit.r2 >= 0.8
    ? `Agrees with the study's linear growth: upload time from 9.5 to 976.6 KB fits a line ` +
      `with R² = ${round(fit.r2, 3)} (${round(fit.slope, 2)} ms per MB), since every ` +
      `20480-byte block costs one round trip.`
    : `Disagrees with the study's linear growth on this run: upload times from 9.5 to 976.6 KB ` +
      `fit a line only with R² = ${round(fit.r2, 3)}; each upload here takes under ` +
      `${Math.ceil(Math.max(...raw.sweepMs))} ms, so scheduling noise${loadNote} swamps the ` +
      `per-block cost that makes the time linear on a quiet machine.`;
  const lockstep =
    `Course-compatible lockstep mode is bound by round trips, not bandwidth: ${rate(seq)} MB/s ` +
    `against ${rate(raw.rawMs)} MB/s for a raw TCP copy of the same bytes (a window of ${window} ` +
    `blocks on one connection reached ${rate(raw.modeMs.async)} MB/s)` +
    (last >= 0
      ? `; ${formatSize(reference[last][0])} took ${round(raw.referenceMs[last] / 1000, 3)} s, ` +
        (pythonHere !== null
          ? `${speedPhrase(pythonHere / raw.referenceMs[last])} the Python STEP peer in the same ` +
            `run (${round(pythonHere / 1000, 3)} s) and `
          : "") +
        `${speedPhrase(reference[last][1] / (raw.referenceMs[last] / 1000))} the course's ` +
        `pair in the facts sheet (${reference[last][1]} s)${loadNote}.`
      : ".");
  return [parallelSentence + multiSentence, linear, lockstep];
}

/** Pure: the study's tables, plots and sentences from raw numbers. */
export function reportTransfer(raw: TransferRaw, plan: TransferPlan): StudyFindings {
  const { runs, streams, window, reference } = plan;
  const studySize = STUDY_BLOCKS * DEFAULT_BLOCK_SIZE;
  const seq = raw.modeMs.sequential;
  const rate = (ms: number) => mbps(studySize, ms);
  const ratio = (ms: number) => round(seq / ms, 2);
  const fit = linearFit(raw.sweep.map((s) => s / 1e6), raw.sweepMs);
  const multi = raw.multi;
  const measured: ReportTable = {
    title: `Measured here (medians of ${runs}; our server in a child process)`,
    columns: ["approach", "workload", "result"],
    rows: [
      [
        "sequential (one connection, lockstep)",
        "515 blocks of 20480 B",
        `${round(seq, 1)} ms, ${rate(seq)} MB/s (baseline)`,
      ],
      ...(["thread", "process", "async"] as const).map((mode) => {
        const ms = raw.modeMs[mode];
        const what = mode === "async"
          ? `async (one connection, window ${window})`
          : `${mode} (${streams} connections)`;
        return [
          what,
          "515 blocks of 20480 B",
          `${round(ms, 1)} ms, ${rate(ms)} MB/s, ${ratio(ms)}× sequential`,
        ];
      }),
      [
        "raw TCP copy (ceiling)",
        "the same 10.5 MB",
        `${round(raw.rawMs, 1)} ms, ${rate(raw.rawMs)} MB/s, ${ratio(raw.rawMs)}× sequential`,
      ],
      [
        `several TCP connections (thread, ${streams}, lockstep each)`,
        multi ? formatSize(multi.size) : "–",
        multi
          ? `${round(multi.threadMs / 1000, 3)} s vs ${
            round(multi.sequentialMs / 1000, 3)
          } s on one connection: ${round(multi.sequentialMs / multi.threadMs, 2)}× as fast`
          : "not measured",
      ],
      [
        "upload time vs size",
        "10 files, 9.5–976.6 KB",
        `linear fit ${round(fit.slope, 2)} ms/MB + ${round(fit.intercept, 2)} ms, R² = ${
          round(fit.r2, 3)
        }`,
      ],
    ],
  };
  const referenceTable: ReportTable = {
    title: "Course-compatible mode (20480-byte blocks, lockstep) vs the course's Python server",
    columns: [
      "size",
      "course Python pair, facts §10 (s)",
      "Python STEP peer here, our client (s)",
      "ours, sequential (s)",
      "speed-up vs facts",
      "speed-up vs peer here",
    ],
    rows: reference.map(([size, facts], i) => [
      formatSize(size),
      facts,
      raw.pythonMs[i] === null ? null : round(raw.pythonMs[i]! / 1000, 4),
      round(raw.referenceMs[i] / 1000, 4),
      round(facts / (raw.referenceMs[i] / 1000), 1),
      raw.pythonMs[i] === null ? null : round(raw.pythonMs[i]! / raw.referenceMs[i], 1),
    ]),
  };
  const sweepTable: ReportTable = {
    title: "Upload time by file size (sequential, 20480-byte blocks)",
    columns: ["size (KB)", "median ms"],
    rows: raw.sweep.map((size, i) => [round(size / 1024, 1), round(raw.sweepMs[i], 2)]),
  };
  const extra = [referenceTable, sweepTable];
  if (raw.ceiling) extra.push(ceilingTable(raw.ceiling));
  if (raw.big.length > 0 && plan.bigBytes !== null) extra.push(bigTable(raw, plan.bigBytes));
  return {
    measured,
    extra,
    plots: plotsOf(raw, plan),
    findings: findingsOf(raw, plan),
    skipped: raw.skipped,
    options: {
      runs,
      sweepRuns: plan.sweepRuns,
      streams,
      window,
      blockSize: DEFAULT_BLOCK_SIZE,
      studyBlocks: STUDY_BLOCKS,
      placement: "unpinned; server in a child process, client in this one",
      cpuPressureAvg10: raw.cpuPressure,
    },
  };
}

/** The transfer study for shared/study_harness.ts (`runStudy(transferStudy, scale)`). */
export const transferStudy: Study<TransferPlan, TransferRaw> = {
  name: "transfer",
  seed: "001_1aecf54b52870d4c.txt",
  title: "File upload over STEP: one connection vs threads, processes and several connections",
  question:
    "Does splitting a STEP upload across threads, processes or several TCP connections make it faster " +
    "than one lockstep connection, and how does upload time grow with file size?",
  plans: TRANSFER_PLANS,
  published: TRANSFER_PUBLISHED,
  measure: async (plan, context) =>
    (await import("./study_measure.ts")).measureStudy(plan, context),
  report: reportTransfer,
};
