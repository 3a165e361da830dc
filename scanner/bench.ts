/**
 * `scanner bench`: the port-scanning study's grid (1, 100, 1024, 65535 ports;
 * sequential, threads and processes with 10/100/200 workers, async) against a
 * lab target built inside a private network namespace, plus nmap comparisons
 * and the issue's speed targets. Returns data; never prints (progress through a
 * callback).
 *
 * The lab: {@linkcode LAB_OPEN} listening (the study's host had 28), SYNs to
 * {@linkcode LAB_FILTERED} dropped by an nftables rule (filtered), everything
 * else closed. On plain loopback a refused connect costs microseconds, so the
 * sequential scan wins and the study's ranking inverts; the filtered ports put
 * back the cost that overlapping hides, as the study's network did.
 *
 * @module
 */
import type { Mode } from "../shared/mode.ts";
import { selfCommand, which } from "../shared/peer.ts";
import { median } from "../shared/stats.ts";
import type { LinePlot, ReportTable } from "../shared/report.ts";
import type { StudyReport, StudyScale } from "../shared/study.ts";
import { scan, type ScanResult } from "./scan.ts";
import {
  type EngineRow,
  engineTable,
  phasesTable,
  runEngineComparison,
  runSpeedTargets,
  type SpeedTarget,
  speedTargetTable,
} from "./bench_targets.ts";
import { ffiUnavailableReason } from "./libc.ts";

/** Environment marker: this process runs inside the bench's private namespace. */
export const LAB_ENV = "SCANNER_LAB_NETNS";
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

/** Expected open and filtered ports among 1..n. */
function expectedFor(n: number): { open: number[]; filtered: number[] } {
  return {
    open: LAB_OPEN.filter((port) => port <= n),
    filtered: LAB_FILTERED.filter((port) => port <= n),
  };
}

function portsOf(result: ScanResult, state: string): number[] {
  return result.hosts[0].ports.filter((port) => port.state === state).map((port) => port.port);
}

function isExact(result: ScanResult, n: number): boolean {
  const expected = expectedFor(n);
  return JSON.stringify(portsOf(result, "open")) === JSON.stringify(expected.open) &&
    JSON.stringify(portsOf(result, "filtered")) === JSON.stringify(expected.filtered);
}

async function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** A running lab target; close it when done. */
export interface Lab {
  /** Drops SYNs to {@linkcode LAB_FILTERED_BLOCK} too (only for the speed target). */
  setBlock(dropped: boolean): Promise<void>;
  close(): void;
}

async function nft(rules: string[]): Promise<void> {
  const file = await Deno.makeTempFile({ prefix: "scanner-lab-" });
  try {
    await Deno.writeTextFile(file, rules.join("\n") + "\n");
    const result = await run("nft", ["-f", file]);
    if (result.code !== 0) throw new Error(`nft failed: ${result.stderr.trim()}`);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** nftables rules dropping SYNs to `ports` (a set expression) in table `table`. */
function dropRules(table: string, ports: string): string[] {
  return [
    `add table inet ${table}`,
    `add chain inet ${table} input { type filter hook input priority 0; }`,
    // SYNs only: a block in the ephemeral range must not also drop the replies to
    // connects that happen to use one of its ports as their source port.
    `add rule inet ${table} input tcp dport { ${ports} } tcp flags & (syn | ack) == syn drop`,
  ];
}

/** Builds the lab in the current (private) namespace: listeners and an nftables drop rule. */
export async function buildLab(): Promise<Lab> {
  if (Deno.env.get(LAB_ENV) !== "1") {
    throw new Error("the lab must be built inside the bench's private network namespace");
  }
  await nft(dropRules("scanner_lab", LAB_FILTERED.join(", ")));
  const listeners = LAB_OPEN.map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
  let blocked = false;
  return {
    async setBlock(dropped) {
      if (dropped === blocked) return;
      await nft(
        dropped
          ? dropRules("scanner_lab_block", `${LAB_FILTERED_BLOCK.from}-${LAB_FILTERED_BLOCK.to}`)
          : ["delete table inet scanner_lab_block"],
      );
      blocked = dropped;
    },
    close: () => listeners.forEach((listener) => listener.close()),
  };
}

/**
 * Effective uid 0, asked of `id -u`: `Deno.uid()` needs --allow-sys=uid and Deno
 * refuses to read /proc/self without --allow-all; the tool already has --allow-run.
 */
async function isRoot(): Promise<boolean> {
  try {
    const result = await run("id", ["-u"]);
    return result.code === 0 && result.stdout.trim() === "0";
  } catch {
    return false;
  }
}

/** Why the lab cannot be built here, or null. */
export async function labUnavailableReason(): Promise<string | null> {
  if (Deno.env.get(LAB_ENV) === "1") return null;
  if (!(await isRoot())) return "not root: no private network namespace for the lab target";
  for (const tool of ["unshare", "ip", "nft"]) {
    if (!which(tool)) return `${tool} is not installed`;
  }
  return null;
}

/**
 * The command that re-runs this program's `bench` with `args` inside a fresh
 * private network namespace (loopback up), marked with {@linkcode LAB_ENV}.
 */
export function labCommand(
  args: string[],
): { command: string; args: string[]; env: Record<string, string> } {
  const self = selfCommand(args);
  const argv = [self.command, ...self.args];
  return {
    command: "unshare",
    args: ["-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", ...argv],
    env: { [LAB_ENV]: "1" },
  };
}

/** Options of a bench run. */
export interface BenchOptions {
  plan: ScalePlan;
  timeoutMs: number;
  /** Module registering `scanner.probe` (default: the main module). */
  entry?: string | URL;
  /** Add nmap timings (when installed). */
  compareNmap: boolean;
  /** Measure the issue's three speed targets (whole processes). */
  speedTargets: boolean;
  /** Run the study's grid and the nmap timings beside it (default true; off: targets only). */
  grid?: boolean;
  onProgress?: (message: string) => void;
}

/** Everything a bench run measured. */
export interface BenchResult {
  cells: Cell[];
  nmap: { ports: number; flags: string; ms: number; exact: boolean }[];
  targets: SpeedTarget[];
  engines: EngineRow[];
  skipped: string[];
}

async function timeScan(
  row: GridRow,
  n: number,
  options: BenchOptions,
): Promise<{ ms: number; exact: boolean }> {
  const ports = Array.from({ length: n }, (_, i) => i + 1);
  const started = performance.now();
  const result = await scan({
    targets: [{ target: "127.0.0.1", address: "127.0.0.1", family: 4 }],
    ports,
    mode: row.mode,
    workers: row.workers,
    // One connect in flight per worker, like the study's threads and pool processes.
    concurrency: row.mode === "async" ? 1024 : 1,
    timeoutMs: options.timeoutMs,
    // One attempt per port, like the study's connect_ex.
    retries: 0,
    entry: options.entry,
  });
  return { ms: performance.now() - started, exact: isExact(result, n) };
}

async function timeProcess(
  command: string,
  args: string[],
): Promise<{ ms: number; stdout: string; code: number }> {
  const started = performance.now();
  const result = await run(command, args);
  return { ms: performance.now() - started, stdout: result.stdout, code: result.code };
}

function nmapPorts(grepable: string, state: string): number[] {
  const line = grepable.split("\n").find((l) => l.includes("Ports:")) ?? "";
  return [...line.matchAll(/(\d+)\/(open|filtered|closed)\//g)]
    .filter((m) => m[2] === state).map((m) => Number(m[1]));
}

/** Runs the grid (and comparisons) against the lab; must run inside the lab namespace. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const cells: Cell[] = [];
  const skipped: string[] = [];
  const nmap: BenchResult["nmap"] = [];
  const targets: SpeedTarget[] = [];
  const engines: EngineRow[] = [];
  const lab = await buildLab();
  try {
    const { plan } = options;
    const grid = options.grid ?? true;
    for (const n of grid ? plan.ports : []) {
      for (const row of plan.rows) {
        if (n > plan.maxPortsFor(row)) continue;
        const times: number[] = [];
        let exact = true;
        for (let r = 0; r < plan.runs; r++) {
          options.onProgress?.(`${row.label}, ${n} ports, run ${r + 1}/${plan.runs}`);
          const one = await timeScan(row, n, options);
          times.push(one.ms);
          exact &&= one.exact;
        }
        cells.push({ row: row.label, ports: n, ms: median(times), runs: plan.runs, exact });
      }
    }
    const skippedRows = plan.rows.flatMap((row) =>
      plan.ports.filter((n) => n > plan.maxPortsFor(row)).map((n) => `${row.label} at ${n} ports`)
    );
    if (!grid) skipped.push("The study's grid was not run (--targets).");
    else if (skippedRows.length > 0) {
      skipped.push(`Too slow for this scale: ${skippedRows.join(", ")}.`);
    }
    const fullOnly = FULL_GRID.filter((row) => !plan.rows.includes(row)).map((row) => row.label);
    if (fullOnly.length > 0) skipped.push(`Only at full scale: ${fullOnly.join(", ")}.`);
    const hasNmap = which("nmap");
    if (options.compareNmap && !hasNmap) skipped.push("nmap is not installed: no nmap comparison.");
    if (options.compareNmap && hasNmap && grid) {
      for (const n of plan.ports.filter((p) => p >= 100)) {
        const choices = n > 1024
          ? ["--min-rate 50000"]
          : plan.runs > 1
          ? ["", "--min-rate 5000"]
          : ["--min-rate 5000"];
        for (const flags of choices) {
          options.onProgress?.(`nmap -sT ${flags} on ${n} ports`);
          const t = await timeProcess("nmap", [
            "-sT",
            "-Pn",
            "-n",
            ...flags.split(" ").filter((f) => f),
            "-p",
            `1-${n}`,
            "127.0.0.1",
            "-oG",
            "-",
          ]);
          const expected = expectedFor(n);
          const exact =
            JSON.stringify(nmapPorts(t.stdout, "open")) === JSON.stringify(expected.open);
          nmap.push({ ports: n, flags: `-sT -Pn -n ${flags}`.trim(), ms: t.ms, exact });
        }
      }
    }
    if (options.compareNmap || options.speedTargets) {
      const ffi = ffiUnavailableReason() === null;
      if (!ffi) skipped.push(`No ffi engine here: ${ffiUnavailableReason()}.`);
      engines.push(
        ...await runEngineComparison(plan.ports.filter((n) => n >= 100), {
          runs: plan.runs,
          hasNmap,
          ffi,
          openCount: (n) => expectedFor(n).open.length,
          onProgress: options.onProgress,
        }),
      );
    }
    if (options.speedTargets) {
      const measured = await runSpeedTargets(
        {
          openCount: LAB_OPEN.length,
          filteredBlock: LAB_FILTERED_BLOCK,
          setBlock: (dropped) => lab.setBlock(dropped),
        },
        {
          runs: plan.runs,
          hasNmap,
          full: plan.ports.includes(65535),
          onProgress: options.onProgress,
        },
      );
      targets.push(...measured.targets);
      skipped.push(...measured.skipped);
    }
  } finally {
    lab.close();
  }
  return { cells, nmap, targets, engines, skipped };
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

/** Builds the study report from a bench run (or from the reason it could not run). */
export function buildStudyReport(
  scale: StudyScale,
  plan: ScalePlan,
  result: BenchResult | null,
  skipped: string[],
  elapsedMs: number,
  timeoutMs: number,
): StudyReport {
  const empty: BenchResult = { cells: [], nmap: [], targets: [], engines: [], skipped: [] };
  const bench = result ?? empty;
  return {
    study: "scanner",
    seed: SEED,
    title: "Port scanning: sequential, threads, processes",
    question:
      "How do sequential processing, multithreading and multiprocessing compare for a TCP connect " +
      "port scan of 1 to 65535 ports with a 0.5 s timeout, and how do 10, 100 and 200 workers change it?",
    scale,
    published: publishedTable(),
    measured: measuredTable(bench, plan),
    extra: extraTables(bench),
    plots: bench.cells.length > 0 ? [benchPlot(bench), publishedPlot()] : [publishedPlot()],
    findings: result && result.cells.length > 0
      ? findings(result, plan)
      : [`Nothing was measured on this machine: ${skipped.join(" ")}`],
    skipped: [...skipped, ...bench.skipped],
    options: {
      ports: plan.ports,
      rows: plan.rows.map((row) => row.label),
      runs: plan.runs,
      timeout_ms: timeoutMs,
      per_worker_concurrency: 1,
      lab: { open: LAB_OPEN, filtered: LAB_FILTERED, filtered_block: LAB_FILTERED_BLOCK },
    },
    elapsedMs,
  };
}

/**
 * Runs the study at a scale and returns its report. Must run inside the lab
 * namespace (see {@linkcode labCommand}); elsewhere it returns a report that
 * says why nothing was measured.
 */
export async function runStudy(
  scale: StudyScale,
  options: { entry?: string | URL; onProgress?: (message: string) => void } = {},
): Promise<StudyReport> {
  const started = performance.now();
  const plan = planFor(scale);
  const timeoutMs = 500;
  const reason = await labUnavailableReason();
  if (reason !== null || Deno.env.get(LAB_ENV) !== "1") {
    return buildStudyReport(
      scale,
      plan,
      null,
      [reason ?? "not inside the lab namespace"],
      performance.now() - started,
      timeoutMs,
    );
  }
  const result = await runBench({
    plan,
    timeoutMs,
    entry: options.entry,
    compareNmap: true,
    speedTargets: true,
    onProgress: options.onProgress,
  });
  return buildStudyReport(scale, plan, result, [], performance.now() - started, timeoutMs);
}
