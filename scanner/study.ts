/**
 * The port-scanning study as data and a pure report: the seed's published
 * table, the lab's facts, the plans per scale, and `report` turning a bench
 * run's raw numbers into the {@linkcode StudyReport} (tables, plots, findings).
 * The measurements live in `bench.ts`; `scannerStudy` is the study in the shape
 * of shared/study_harness.ts.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyReport, StudyScale } from "../shared/study.ts";
import { assembleStudyReport, type Study, type StudyFindings } from "../shared/study_harness.ts";
import {
  type EngineRow,
  engineTable,
  phasesTable,
  type SpeedTarget,
  speedTargetTable,
} from "./bench_targets.ts";

/** The study's seed file. */
export const SEED = "000_843b4a2b6ac115e1.txt";
/** The lab's 28 listening ports (20 of them within 1-1024, like a typical host). */
export const LAB_OPEN: readonly number[] = [
  21,
  22,
  23,
  25,
  53,
  80,
  110,
  111,
  135,
  139,
  143,
  199,
  443,
  445,
  587,
  631,
  873,
  993,
  995,
  1023,
  1723,
  3306,
  3389,
  5432,
  5900,
  8080,
  8443,
  9090,
];
/** Lab ports whose SYNs are dropped: each costs a sequential scan one whole timeout. */
export const LAB_FILTERED: readonly number[] = [100, 1000, 20000, 60000];
/** A block of 1024 dropped ports for the "1024 filtered ports" speed target. */
export const LAB_FILTERED_BLOCK = { from: 50001, to: 51024 };

/** One configuration of the study's grid. */
export interface GridRow {
  label: string;
  /** The study's row label this row matches. */
  studyLabel: string;
  mode: Mode;
  workers: number;
}

/** The study's published execution times in seconds (1, 100, 1024, 65535 ports). */
export const PUBLISHED: readonly { label: string; seconds: (number | null)[] }[] = [
  { label: "Serial", seconds: [0.003, 0.33, 3.48, 218.74] },
  { label: "Multithreading with 10 threads", seconds: [0.008, 0.04, 0.38, 22.51] },
  { label: "Multiprocessing with 10 processes", seconds: [0.039, 0.07, 0.37, 21.57] },
  { label: "Multithreading with 100 threads", seconds: [0.029, 0.06, 0.31, 17.81] },
  { label: "Multiprocessing with 100 processes", seconds: [0.33, 0.40, 1.60, 71.97] },
  { label: "Multithreading with 200 threads", seconds: [0.05, 0.09, 0.32, 18.07] },
  { label: "Multiprocessing with 200 processes", seconds: [0.91, 1.10, 2.38, 61.29] },
];

/** The study's port counts. */
export const STUDY_PORTS: readonly number[] = [1, 100, 1024, 65535];

/** The full grid: the study's seven rows plus async. */
export const FULL_GRID: readonly GridRow[] = [
  { label: "sequential", studyLabel: "Serial", mode: "sequential", workers: 1 },
  {
    label: "thread ×10",
    studyLabel: "Multithreading with 10 threads",
    mode: "thread",
    workers: 10,
  },
  {
    label: "process ×10",
    studyLabel: "Multiprocessing with 10 processes",
    mode: "process",
    workers: 10,
  },
  {
    label: "thread ×100",
    studyLabel: "Multithreading with 100 threads",
    mode: "thread",
    workers: 100,
  },
  {
    label: "process ×100",
    studyLabel: "Multiprocessing with 100 processes",
    mode: "process",
    workers: 100,
  },
  {
    label: "thread ×200",
    studyLabel: "Multithreading with 200 threads",
    mode: "thread",
    workers: 200,
  },
  {
    label: "process ×200",
    studyLabel: "Multiprocessing with 200 processes",
    mode: "process",
    workers: 200,
  },
  { label: "async", studyLabel: "(not in the study)", mode: "async", workers: 1 },
];

/** What each scale runs: rows, port counts (per row), repeats. */
export interface ScalePlan {
  rows: GridRow[];
  ports: number[];
  /** Port counts above this are skipped for the given rows (too slow at this scale). */
  maxPortsFor: (row: GridRow) => number;
  runs: number;
}

/**
 * The plan for a scale (smoke ≤ 20 s, quick ≤ 45 s, full = the study's sizes;
 * 100 and 200 workers only at full scale: starting them costs ~60 ms each here).
 */
export function planFor(scale: StudyScale): ScalePlan {
  if (scale === "smoke") {
    return {
      rows: FULL_GRID.filter((row) => row.workers <= 10),
      ports: [1, 100, 1024],
      maxPortsFor: () => 1024,
      runs: 1,
    };
  }
  if (scale === "quick") {
    return {
      rows: FULL_GRID.filter((row) => row.workers <= 10),
      ports: [1, 100, 1024, 65535],
      // Ten children each sending 6554 single-port tasks costs ~15 s on 2 cores.
      maxPortsFor: (row) => (row.mode === "process" ? 1024 : 65535),
      runs: 1,
    };
  }
  return { rows: [...FULL_GRID], ports: [...STUDY_PORTS], maxPortsFor: () => 65535, runs: 3 };
}

/** One measured cell. */
export interface Cell {
  row: string;
  ports: number;
  /** Median wall time of the scans, ms (worker start-up included, as in the study). */
  ms: number;
  runs: number;
  /** Every run found exactly the lab's open and filtered ports. */
  exact: boolean;
}

/** Everything a bench run measured. */
export interface BenchResult {
  /** Stopped by SIGINT/SIGTERM before the end (absent: it ran to the end). */
  interrupted?: boolean;
  cells: Cell[];
  nmap: { ports: number; flags: string; ms: number; exact: boolean }[];
  targets: SpeedTarget[];
  engines: EngineRow[];
  skipped: string[];
}

const round = (value: number, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits;

/** The measured table: one row per grid row, seconds per port count (null when not run). */
export function measuredTable(result: BenchResult, plan: ScalePlan): ReportTable {
  return {
    title: "Measured on this machine (lab namespace, median seconds; * = a run was not exact)",
    columns: ["Execution", ...STUDY_PORTS.map((n) => `${n} port${n === 1 ? "" : "s"} (s)`)],
    rows: plan.rows.map((row) => [
      `${
        row.studyLabel === "(not in the study)" ? "Async (one isolate)" : row.studyLabel
      } [${row.label}]`,
      ...STUDY_PORTS.map((n) => {
        const cell = result.cells.find((c) => c.row === row.label && c.ports === n);
        if (!cell) return null;
        return cell.exact ? round(cell.ms / 1000, 4) : `${round(cell.ms / 1000, 4)}*`;
      }),
    ]),
  };
}

/** The study's table, transcribed. */
export function publishedTable(): ReportTable {
  return {
    title: "Published (Projić & Marjanica, Table a: execution times, remote host, 28 open ports)",
    columns: ["Execution", ...STUDY_PORTS.map((n) => `${n} port${n === 1 ? "" : "s"} (s)`)],
    rows: PUBLISHED.map((row) => [row.label, ...row.seconds]),
  };
}

/** Time against ports, one line per mode, log scales. */
export function benchPlot(result: BenchResult): LinePlot {
  return {
    title: "Scan time against ports (lab namespace)",
    xLabel: "ports scanned",
    yLabel: "seconds",
    xLog: true,
    yLog: true,
    points: result.cells.map((cell) => ({
      x: cell.ports,
      y: Math.max(1e-4, cell.ms / 1000),
      series: cell.row,
    })),
  };
}

/** The study's numbers as a plot, for side-by-side reading. */
export function publishedPlot(): LinePlot {
  return {
    title: "Published: scan time against ports (the study)",
    xLabel: "ports scanned",
    yLabel: "seconds",
    xLog: true,
    yLog: true,
    points: PUBLISHED.flatMap((row) =>
      row.seconds.map((s, i) => ({ x: STUDY_PORTS[i], y: s ?? 0, series: row.label }))
    ),
  };
}

/** Extra tables: nmap comparisons and the speed targets, as ratios. */
export function extraTables(result: BenchResult): ReportTable[] {
  const tables: ReportTable[] = [];
  if (result.nmap.length > 0) {
    const best = (n: number) => {
      const cells = result.cells.filter((c) => c.ports === n);
      return cells.length === 0 ? null : cells.reduce((a, b) => (a.ms <= b.ms ? a : b));
    };
    tables.push({
      title: "nmap -sT on the same lab (nmap time / our fastest mode's time)",
      columns: [
        "Ports",
        "nmap flags",
        "nmap (s)",
        "same open ports",
        "our fastest",
        "ours (s)",
        "nmap/ours",
      ],
      rows: result.nmap.map((row) => {
        const ours = best(row.ports);
        return [
          row.ports,
          row.flags,
          round(row.ms / 1000),
          row.exact ? "yes" : "no",
          ours?.row ?? null,
          ours ? round(ours.ms / 1000, 4) : null,
          ours ? round(row.ms / ours.ms, 2) : null,
        ];
      }),
    });
  }
  if (result.engines.length > 0) tables.push(engineTable(result.engines));
  if (result.targets.length > 0) tables.push(speedTargetTable(result.targets));
  if (result.targets.some((t) => t.phases)) tables.push(phasesTable(result.targets));
  return tables;
}

/** Two or three sentences generated from the measured numbers. */
export function findings(result: BenchResult, plan: ScalePlan): string[] {
  const out: string[] = [];
  const largest = Math.max(...result.cells.map((c) => c.ports));
  const at = result.cells.filter((c) => c.ports === largest);
  const seq = at.find((c) => c.row === "sequential");
  const fastest = at.reduce((a, b) => (a.ms <= b.ms ? a : b));
  const studyIndex = STUDY_PORTS.indexOf(largest);
  const studySerial = PUBLISHED[0].seconds[studyIndex]!;
  const studyBest = Math.min(...PUBLISHED.slice(1).map((r) => r.seconds[studyIndex]!));
  if (seq && fastest) {
    const ours = seq.ms / fastest.ms;
    const theirs = studySerial / studyBest;
    out.push(
      `At ${largest} ports the fastest configuration here was ${fastest.row} (${
        round(fastest.ms / 1000, 3)
      } s), ` +
        `${round(ours, 1)}× faster than sequential (${
          round(seq.ms / 1000, 3)
        } s); the study measured ` +
        `${round(theirs, 1)}× between serial and its best threaded run, so this machine ` +
        (ours > 2
          ? "agrees that overlapping connects wins, because each dropped port costs a sequential scan a whole timeout"
          : "agrees only in direction: here sequential pays one timeout per dropped port and microseconds per refused one, " +
            "while the study paid a network round trip (~3.3 ms) on every port") +
        ".",
    );
  }
  const small = result.cells.filter((c) => c.ports === 1);
  const smallSeq = small.find((c) => c.row === "sequential");
  const smallProc = small.find((c) => c.row === "process ×10");
  const smallThread = small.find((c) => c.row === "thread ×10");
  const cellAt = (row: string) => at.find((c) => c.row === row);
  const [p10, p200, t10, t200] = ["process ×10", "process ×200", "thread ×10", "thread ×200"].map(
    cellAt,
  );
  if (p10 && p200 && t10 && t200) {
    // Full scale: the study's point about worker counts.
    const studyP = PUBLISHED[6].seconds[studyIndex]! / PUBLISHED[2].seconds[studyIndex]!;
    const studyT = PUBLISHED[5].seconds[studyIndex]! / PUBLISHED[1].seconds[studyIndex]!;
    out.push(
      `Going from 10 to 200 workers at ${largest} ports changed processes ${
        round(p200.ms / p10.ms, 2)
      }× ` +
        `and threads ${round(t200.ms / t10.ms, 2)}× here (study: ${round(studyP, 2)}× and ${
          round(studyT, 2)
        }×): ` +
        (p200.ms > p10.ms
          ? "more processes than cores cost more than they overlap, as the study found"
          : "unlike the study, extra processes still paid for themselves on this machine") +
        ".",
    );
  } else if (smallSeq && smallProc && smallThread) {
    out.push(
      `For one port, start-up dominates as in the study: sequential took ${
        round(smallSeq.ms, 1)
      } ms, ` +
        `10 threads ${round(smallThread.ms, 1)} ms (${
          round(smallThread.ms / smallSeq.ms, 0)
        }×) and 10 processes ` +
        `${round(smallProc.ms, 1)} ms (${round(smallProc.ms / smallSeq.ms, 0)}×); the study saw ${
          round(PUBLISHED[1].seconds[0]! / PUBLISHED[0].seconds[0]!, 1)
        }× and ${round(PUBLISHED[2].seconds[0]! / PUBLISHED[0].seconds[0]!, 0)}×: ` +
        `a Deno worker or child loads a whole runtime, where Python's threads and forked pool workers share one.`,
    );
  }
  const inexact = result.cells.filter((c) => !c.exact);
  const nmapRow = result.nmap.find((n) => n.ports === largest && n.flags.includes("min-rate"));
  out.push(
    (inexact.length === 0
      ? `Every run found exactly the lab's open and filtered ports`
      : `${inexact.length} cells were not exact (${
        inexact.map((c) => `${c.row}@${c.ports}`).join(", ")
      })`) +
      (nmapRow && fastest
        ? `; nmap ${nmapRow.flags} took ${round(nmapRow.ms / 1000, 3)} s on ${largest} ports, ` +
          `${round(nmapRow.ms / fastest.ms, 2)}× our fastest mode.`
        : "."),
  );
  void plan;
  return out;
}

/** What the study's measurement returns: a bench run, or why there was none. */
export interface StudyRaw {
  /** The bench run (null: nothing measured). */
  result: BenchResult | null;
  /** Why nothing (or less) was measured. */
  unavailable: string[];
  timeoutMs: number;
}

/** The study's description, plans per scale and published table (measure: see `bench.ts`). */
export const STUDY_INFO = {
  name: "scanner",
  seed: SEED,
  title: "Port scanning: sequential, threads, processes",
  question: "How do sequential processing, multithreading and multiprocessing compare for a TCP " +
    "connect port scan of 1 to 65535 ports with a 0.5 s timeout, and how do 10, 100 and 200 " +
    "workers change it?",
  plans: { smoke: planFor("smoke"), quick: planFor("quick"), full: planFor("full") },
  published: publishedTable(),
} as const;

/** Pure: the study's tables, plots and sentences from its raw numbers (the harness's `report`). */
export function studyFindings(raw: StudyRaw, plan: ScalePlan): StudyFindings {
  const empty: BenchResult = { cells: [], nmap: [], targets: [], engines: [], skipped: [] };
  const bench = raw.result ?? empty;
  return {
    measured: measuredTable(bench, plan),
    extra: extraTables(bench),
    plots: bench.cells.length > 0 ? [benchPlot(bench), publishedPlot()] : [publishedPlot()],
    findings: raw.result && raw.result.cells.length > 0
      ? findings(raw.result, plan)
      : [`Nothing was measured on this machine: ${raw.unavailable.join(" ")}`],
    skipped: [...raw.unavailable, ...bench.skipped],
    options: {
      ports: plan.ports,
      rows: plan.rows.map((row) => row.label),
      runs: plan.runs,
      timeout_ms: raw.timeoutMs,
      per_worker_concurrency: 1,
      lab: { open: LAB_OPEN, filtered: LAB_FILTERED, filtered_block: LAB_FILTERED_BLOCK },
    },
  };
}

/** Builds the study report from a bench run (or from the reason it could not run). */
export function buildStudyReport(
  scale: StudyScale,
  plan: ScalePlan,
  result: BenchResult | null,
  skipped: string[],
  elapsedMs: number,
  timeoutMs: number,
): StudyReport {
  const study: Study<ScalePlan, StudyRaw> = {
    ...STUDY_INFO,
    plans: { ...STUDY_INFO.plans, [scale]: plan },
    measure: () => Promise.reject(new Error("buildStudyReport only reports")),
    report: studyFindings,
  };
  return assembleStudyReport(study, scale, { result, unavailable: skipped, timeoutMs }, elapsedMs);
}
