/**
 * `scanner bench`: the port-scanning study's grid (1, 100, 1024, 65535 ports;
 * sequential, threads and processes with 10/100/200 workers, async) against a
 * lab target built inside a private network namespace, plus nmap comparisons
 * and the speed targets. Returns data; never prints (progress through a
 * callback).
 *
 * The lab: {@linkcode LAB_OPEN} listening (the study's host had 28), SYNs to
 * {@linkcode LAB_FILTERED} dropped by an nftables rule (filtered), everything
 * else closed. On plain loopback a refused connect costs microseconds, so the
 * sequential scan wins and the study's ranking inverts; the filtered ports put
 * back the cost that overlapping hides, as the study's network did.
 *
 * The study's data and its pure report live in `study.ts`.
 *
 * @module
 */
import { selfCommand, which } from "../shared/peer.ts";
import { median } from "../shared/stats.ts";
import type { StudyReport, StudyScale } from "../shared/study.ts";
import { scan, type ScanResult } from "./scan.ts";
import {
  type EngineRow,
  runEngineComparison,
  runSpeedTargets,
  type SpeedTarget,
} from "./bench_targets.ts";
import { ffiUnavailableReason } from "./libc.ts";
import { runStudy as runHarnessStudy, type Study } from "../shared/study_harness.ts";
import {
  type BenchResult,
  type Cell,
  FULL_GRID,
  type GridRow,
  LAB_FILTERED,
  LAB_FILTERED_BLOCK,
  LAB_OPEN,
  type ScalePlan,
  STUDY_INFO,
  studyFindings,
  type StudyRaw,
} from "./study.ts";

/** Environment marker: this process runs inside the bench's private namespace. */
export const LAB_ENV = "SCANNER_LAB_NETNS";

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
  /** Measure the three speed targets (whole processes). */
  speedTargets: boolean;
  /** Run the study's grid and the nmap timings beside it (default true; off: targets only). */
  grid?: boolean;
  /** Stops the run (Ctrl-C): what was measured so far is returned, `interrupted` set. */
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
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
        if (options.signal?.aborted) break;
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
          if (options.signal?.aborted) break;
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
          signal: options.signal,
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
          signal: options.signal,
        },
      );
      targets.push(...measured.targets);
      skipped.push(...measured.skipped);
    }
  } finally {
    lab.close();
  }
  const interrupted = options.signal?.aborted ?? false;
  if (interrupted) skipped.push("Interrupted: only what was measured before the stop signal.");
  return { cells, nmap, targets, engines, skipped, ...(interrupted ? { interrupted } : {}) };
}

/** The study's measurement (the harness's `measure`): the bench inside the lab, or why not. */
export async function measureStudy(
  plan: ScalePlan,
  context: { progress: (line: string) => void; entry?: string | URL },
): Promise<StudyRaw> {
  const timeoutMs = 500;
  const reason = await labUnavailableReason();
  if (reason !== null || Deno.env.get(LAB_ENV) !== "1") {
    return { result: null, unavailable: [reason ?? "not inside the lab namespace"], timeoutMs };
  }
  const result = await runBench({
    plan,
    timeoutMs,
    entry: context.entry,
    compareNmap: true,
    speedTargets: true,
    onProgress: context.progress,
  });
  return { result, unavailable: [], timeoutMs };
}

/** The port-scanning study in the shape of shared/study_harness.ts. */
export const scannerStudy: Study<ScalePlan, StudyRaw> = {
  ...STUDY_INFO,
  plans: STUDY_INFO.plans,
  measure: (plan, context) => measureStudy(plan, context),
  report: studyFindings,
};

/**
 * Runs the study at a scale and returns its report. Must run inside the lab
 * namespace (see {@linkcode labCommand}); elsewhere it returns a report that
 * says why nothing was measured.
 */
export function runStudy(
  scale: StudyScale,
  options: { onProgress?: (message: string) => void } = {},
): Promise<StudyReport> {
  return runHarnessStudy(scannerStudy, scale, { progress: options.onProgress });
}
