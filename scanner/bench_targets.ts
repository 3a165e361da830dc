/**
 * The speed targets and the engines-vs-nmap comparison, measured as
 * whole processes against the lab (inside its private namespace), each against a
 * baseline run in the same bench, interleaved run by run so load hits both:
 *
 * - all 65535 ports, default options: at most 0.6× nmap's time
 *   (`nmap -sT -Pn -n --min-rate 50000`);
 * - 1024 filtered ports at the 500 ms timeout: at most 600 ms, exact;
 * - one open port, start to exit, from source and from the bundle: at most 1.3×
 *   `deno run` of an empty file.
 *
 * @module
 */
import { selfCommand } from "../shared/peer.ts";
import { PHASES_ENV } from "./fast_scan.ts";
import { median } from "../shared/stats.ts";
import type { ReportTable } from "../shared/report.ts";

/** One measured speed target. */
export interface SpeedTarget {
  name: string;
  /** Our median, ms (default options). */
  oursMs: number;
  /** What we are compared with (null: an absolute goal). */
  baseline: string | null;
  baselineMs: number | null;
  /** ours / baseline, or ours / goal for an absolute goal. */
  ratio: number | null;
  /** The goal as text (`≤ 0.6× nmap`). */
  goal: string;
  met: boolean;
  exact: boolean;
  runs: number;
  /** Where our time went (medians, ms), from the fast path's phase line. */
  phases?: Phases;
}

/**
 * Where a whole scanner process's time goes (ms): `start` = process start to the
 * runtime's time origin plus exit (the whole time minus the rest), `loaded` = the
 * runtime's JavaScript start and our modules, `setup` = parsing, opening libc,
 * the open-file limit, `scan` = the connect loop, `output` = results and printing.
 */
export interface Phases {
  start: number;
  loaded: number;
  setup: number;
  scan: number;
  output: number;
}

/**
 * Runs of each side of the one-port start-up target: a start is ~100 ms and its
 * spread on a shared machine is tens of ms, so a median of 5 moved the ratio by
 * ±0.1 between runs minutes apart.
 */
const START_RUNS = 15;

/** Whole-process times of both engines and nmap on the same port range. */
export interface EngineRow {
  ports: number;
  ffiMs: number | null;
  connectMs: number;
  nmapMs: number | null;
  /** Every run of the ffi engine found exactly the lab's open ports (null: not run). */
  ffiExact: boolean | null;
  connectExact: boolean;
}

/** A process to time and how to tell it found the right thing. */
interface Runner {
  command: string;
  args: string[];
  check?: (stdout: string) => boolean;
  /** Ask our fast path where its time went (see {@linkcode Phases}). */
  phases?: boolean;
}

const PHASES_LINE = /scanner phases: loaded=([\d.]+) setup=([\d.]+) scan=([\d.]+) output=([\d.]+)/;

async function timed(runner: Runner): Promise<{ ms: number; ok: boolean; phases?: Phases }> {
  const started = performance.now();
  const output = await new Deno.Command(runner.command, {
    args: runner.args,
    stdin: "null",
    stdout: "piped",
    stderr: runner.phases ? "piped" : "null",
    env: runner.phases ? { [PHASES_ENV]: "1" } : undefined,
  }).output();
  const ms = performance.now() - started;
  const ok = output.code === 0 &&
    (runner.check?.(new TextDecoder().decode(output.stdout)) ?? true);
  const match = runner.phases ? PHASES_LINE.exec(new TextDecoder().decode(output.stderr)) : null;
  if (!match) return { ms, ok };
  const [loaded, setup, scan, out] = match.slice(1).map(Number);
  const phases = { start: ms - loaded - setup - scan - out, loaded, setup, scan, output: out };
  return { ms, ok, phases };
}

/** Per-field medians of phase samples (undefined without samples). */
function medianPhases(samples: Phases[]): Phases | undefined {
  if (samples.length === 0) return undefined;
  const of = (key: keyof Phases) => median(samples.map((p) => p[key]));
  return {
    start: of("start"),
    loaded: of("loaded"),
    setup: of("setup"),
    scan: of("scan"),
    output: of("output"),
  };
}

/**
 * Runs each runner `runs` times, interleaved; medians and whether every run was
 * ok. Stopped by `signal`: the complete rounds so far, or `null` before the first.
 */
async function interleaved(
  runners: Runner[],
  runs: number,
  signal?: AbortSignal,
): Promise<{ ms: number; ok: boolean; phases?: Phases }[] | null> {
  const times = runners.map(() => [] as number[]);
  const phases = runners.map(() => [] as Phases[]);
  const ok = runners.map(() => true);
  for (let r = 0; r < runs; r++) {
    // Stopped (Ctrl-C): keep the rounds already complete.
    if (signal?.aborted) {
      if (r === 0) return null;
      break;
    }
    for (let i = 0; i < runners.length; i++) {
      const t = await timed(runners[i]);
      times[i].push(t.ms);
      if (t.phases) phases[i].push(t.phases);
      ok[i] &&= t.ok;
    }
  }
  return times.map((list, i) => ({ ms: median(list), ok: ok[i], phases: medianPhases(phases[i]) }));
}

/** This program (source or bundle) as a command, with `args`. */
export function scannerCommand(args: string[], entry = Deno.mainModule): Runner {
  return selfCommand(args, { entry });
}

/** The bundle to time: `dist/scanner.js` beside the sources, or this program when it is one. */
export function bundlePath(): string | null {
  const main = Deno.mainModule;
  if (main.endsWith(".js")) return new URL(main).pathname;
  const path = new URL("../dist/scanner.js", import.meta.url).pathname;
  try {
    Deno.statSync(path);
    return path;
  } catch {
    return null;
  }
}

function nmapRunner(args: string[]): Runner {
  return { command: "nmap", args: ["-sT", "-Pn", "-n", ...args, "127.0.0.1", "-oG", "-"] };
}

const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

/** What the lab holds, for the checks. */
export interface LabFacts {
  openCount: number;
  filteredBlock: { from: number; to: number };
  /** Drops the filtered block (on) or lets it answer (off). */
  setBlock(dropped: boolean): Promise<void>;
}

/** Measures the three speed targets; `hasNmap` false leaves nmap's baseline out. */
export async function runSpeedTargets(
  lab: LabFacts,
  options: {
    runs: number;
    hasNmap: boolean;
    full: boolean;
    onProgress?: (message: string) => void;
    signal?: AbortSignal;
  },
): Promise<{ targets: SpeedTarget[]; skipped: string[] }> {
  const targets: SpeedTarget[] = [];
  const skipped: string[] = [];
  const runs = Math.max(3, options.runs);
  if (options.full) {
    options.onProgress?.("speed target: all 65535 ports vs nmap");
    await lab.setBlock(false);
    const ours = scannerCommand(["127.0.0.1", "-p-", "--grep", "--show", "open"]);
    ours.check = (out) => count(out, /\/open\//g) === lab.openCount;
    ours.phases = true;
    if (options.hasNmap) {
      const pair = await interleaved(
        [ours, nmapRunner(["--min-rate", "50000", "-p-"])],
        runs,
        options.signal,
      );
      if (!pair) return { targets, skipped };
      const [a, b] = pair;
      targets.push({
        name: "all 65535 ports, whole process, default options",
        oursMs: a.ms,
        baseline: "nmap -sT -Pn -n --min-rate 50000",
        baselineMs: b.ms,
        ratio: a.ms / b.ms,
        goal: "≤ 0.6× nmap",
        met: a.ms <= 0.6 * b.ms,
        exact: a.ok,
        runs,
        phases: a.phases,
      });
    } else skipped.push("nmap is not installed: no 65535-port target.");
  } else skipped.push("Speed target 'all 65535 ports' runs only at quick and full scale.");

  options.onProgress?.("speed target: 1024 filtered ports at 500 ms");
  await lab.setBlock(true);
  const { from, to } = lab.filteredBlock;
  const filtered = scannerCommand([
    "127.0.0.1",
    "-p",
    `${from}-${to}`,
    "--grep",
    "--show",
    "filtered",
  ]);
  filtered.check = (out) => count(out, /\/filtered\//g) === to - from + 1;
  filtered.phases = true;
  const single = await interleaved([filtered], runs, options.signal);
  if (!single) return { targets, skipped };
  const [f] = single;
  targets.push({
    name: `${to - from + 1} filtered ports, 500 ms timeout, whole process`,
    oursMs: f.ms,
    baseline: null,
    baselineMs: null,
    ratio: f.ms / 600,
    goal: "≤ 600 ms",
    met: f.ms <= 600,
    exact: f.ok,
    runs,
    phases: f.phases,
  });
  await lab.setBlock(false);

  options.onProgress?.("speed target: one open port, start to exit");
  const empty = await Deno.makeTempFile({ prefix: "scanner-empty-", suffix: ".ts" });
  try {
    const onePort = ["127.0.0.1", "-p", "22", "--grep"];
    const check = (out: string) => out.includes("22/open/");
    const base: Runner = { command: Deno.execPath(), args: ["run", "--quiet", empty] };
    const source = new URL("./main.ts", import.meta.url).href;
    const runners: { name: string; runner: Runner }[] = [];
    if (source.startsWith("file:")) {
      runners.push({
        name: "source",
        runner: { ...scannerCommand(onePort, source), check, phases: true },
      });
    }
    const bundle = bundlePath();
    if (bundle) {
      runners.push({
        name: "bundle",
        runner: { ...scannerCommand(onePort, bundle), check, phases: true },
      });
    } else skipped.push("No dist/scanner.js: run `deno task bundle` to time the bundle's start.");
    const results = await interleaved(
      [base, ...runners.map((r) => r.runner)],
      Math.max(START_RUNS, runs),
      options.signal,
    );
    if (!results) return { targets, skipped };
    runners.forEach((r, i) => {
      const ours = results[i + 1];
      targets.push({
        name: `one open port, start to exit (${r.name})`,
        oursMs: ours.ms,
        baseline: "deno run of an empty file",
        baselineMs: results[0].ms,
        ratio: ours.ms / results[0].ms,
        goal: "≤ 1.3× deno run (empty file)",
        met: ours.ms <= 1.3 * results[0].ms,
        exact: ours.ok,
        runs: Math.max(START_RUNS, runs),
        phases: ours.phases,
      });
    });
  } finally {
    await Deno.remove(empty).catch(() => {});
  }
  return { targets, skipped };
}

/** Both engines (default mode) and nmap, whole processes, on ports 1..n of the lab. */
export async function runEngineComparison(
  portCounts: number[],
  options: {
    runs: number;
    hasNmap: boolean;
    ffi: boolean;
    openCount: (n: number) => number;
    onProgress?: (message: string) => void;
    signal?: AbortSignal;
  },
): Promise<EngineRow[]> {
  const rows: EngineRow[] = [];
  for (const n of portCounts) {
    options.onProgress?.(`engines side by side with nmap: ${n} ports`);
    const want = options.openCount(n);
    const check = (out: string) => count(out, /\/open\//g) === want;
    const args = ["127.0.0.1", "-p", `1-${n}`, "--grep"];
    const runners: Runner[] = [
      { ...scannerCommand([...args, "--engine", "connect"]), check },
    ];
    if (options.ffi) runners.push({ ...scannerCommand([...args, "--engine", "ffi"]), check });
    if (options.hasNmap) {
      runners.push(
        nmapRunner([
          ...(n > 1024 ? ["--min-rate", "50000"] : ["--min-rate", "5000"]),
          "-p",
          `1-${n}`,
        ]),
      );
    }
    const results = await interleaved(runners, options.runs, options.signal);
    if (!results) break;
    let i = 1;
    rows.push({
      ports: n,
      connectMs: results[0].ms,
      ffiMs: options.ffi ? results[i++].ms : null,
      nmapMs: options.hasNmap ? results[i].ms : null,
      ffiExact: options.ffi ? results[1].ok : null,
      connectExact: results[0].ok,
    });
  }
  return rows;
}

const round = (value: number, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits;

/** The speed targets as a table. */
export function speedTargetTable(targets: SpeedTarget[]): ReportTable {
  return {
    title: "Speed targets (whole processes, default options, medians of interleaved runs)",
    columns: ["Case", "scanner (ms)", "baseline", "baseline (ms)", "ratio", "goal", "met", "exact"],
    rows: targets.map((t) => [
      t.name,
      round(t.oursMs, 1),
      t.baseline,
      t.baselineMs === null ? null : round(t.baselineMs, 1),
      t.ratio === null ? null : round(t.ratio, 2),
      t.goal,
      t.met ? "yes" : "no",
      t.exact ? "yes" : "no",
    ]),
  };
}

/** Where the time of each speed target went, as a table (targets with phases only). */
export function phasesTable(targets: SpeedTarget[]): ReportTable {
  const measured = targets.filter((t) => t.phases !== undefined);
  return {
    title: "Where the time goes (ms, medians of the same runs): start = process start and exit " +
      "outside JavaScript, loaded = runtime start in JavaScript and our modules, setup = " +
      "arguments, libc, limits, scan = the connect loop, output = results and printing",
    columns: ["Case", "whole", "start", "loaded", "setup", "scan", "output"],
    rows: measured.map((t) => {
      const p = t.phases!;
      return [
        t.name,
        round(t.oursMs, 1),
        round(p.start, 1),
        round(p.loaded, 1),
        round(p.setup, 1),
        round(p.scan, 1),
        round(p.output, 1),
      ];
    }),
  };
}

/** The engines side by side with nmap, as a table. */
export function engineTable(rows: EngineRow[]): ReportTable {
  return {
    title: "Engines side by side with nmap (whole processes, lab namespace, median ms)",
    columns: [
      "Ports",
      "ffi engine",
      "connect engine",
      "nmap -sT",
      "ffi/nmap",
      "connect/nmap",
      "exact",
    ],
    rows: rows.map((row) => [
      row.ports,
      row.ffiMs === null ? null : round(row.ffiMs, 1),
      round(row.connectMs, 1),
      row.nmapMs === null ? null : round(row.nmapMs, 1),
      row.ffiMs === null || row.nmapMs === null ? null : round(row.ffiMs / row.nmapMs, 2),
      row.nmapMs === null ? null : round(row.connectMs / row.nmapMs, 2),
      `${row.ffiExact === null ? "–" : row.ffiExact ? "yes" : "no"}, ${
        row.connectExact ? "yes" : "no"
      }`,
    ]),
  };
}
