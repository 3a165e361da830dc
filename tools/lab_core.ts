/**
 * The lab: runs each tool's `bench --study` in turn (as a child process, from
 * source or from the bundles), collects the {@linkcode StudyReport}s, and writes
 * `lab-report/` (index.html, README.md, results.json, plots/*.svg).
 *
 * The core returns data and reports progress through a callback; `tools/lab.ts`
 * prints.
 *
 * @module
 */
import { readPressure } from "../shared/pressure.ts";
import { renderLinePlot } from "../shared/report.ts";
import {
  STUDY_NAMES,
  type StudyName,
  type StudyReport,
  type StudyScale,
  validateStudyReport,
} from "../shared/study.ts";
import { VERSION } from "../shared/version.ts";
import {
  type LabResults,
  type MachineInfo,
  renderLabHtml,
  renderLabMarkdown,
  type StudyFailure,
} from "./lab_render.ts";

/** Permissions each tool's bench needs (kept in step with tools/build.ts). */
const BENCH_PERMISSIONS = [
  "--allow-env",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-sys",
];

/** Permissions one study needs beyond those (ipcbench: shared memory through FFI). */
const EXTRA_PERMISSIONS: Partial<Record<StudyName, string[]>> = { ipcbench: ["--allow-ffi"] };

/** Rough wall time of each study per scale (measured on 2 cores), for the time-left estimate. */
export const EXPECTED_MS: Record<StudyScale, Record<StudyName, number>> = {
  smoke: {
    scanner: 13_000,
    transfer: 7_000,
    taskserver: 17_000,
    interarrival: 17_000,
    ipcbench: 15_000,
  },
  quick: {
    scanner: 30_000,
    transfer: 8_000,
    taskserver: 30_000,
    interarrival: 42_000,
    ipcbench: 20_000,
  },
  full: {
    scanner: 480_000,
    transfer: 60_000,
    taskserver: 1_800_000,
    interarrival: 170_000,
    ipcbench: 120_000,
  },
};

/** A study is killed when it takes this long. */
export const TIMEOUT_MS: Record<StudyScale, number> = {
  smoke: 90_000,
  quick: 180_000,
  full: 4 * 3600_000,
};

/** Options for {@linkcode runLab}. */
export interface LabOptions {
  scale: StudyScale;
  only: StudyName[];
  /** Run the tools from source (`<tool>/main.ts`), `dist/<tool>.js` or compiled `dist/<tool>`. */
  from: "source" | "bundle" | "binary";
  /** Directory that holds the tool sources (the repository root) or the bundles. */
  root: string;
  /** Output directory (default `lab-report`). */
  out: string;
  /** Per-study timeout in milliseconds (default from {@linkcode TIMEOUT_MS}). */
  timeoutMs?: number;
  signal?: AbortSignal;
  onEvent?: (event: LabEvent) => void;
}

/** Progress the lab reports while it runs. */
export type LabEvent =
  | { type: "start"; study: StudyName; index: number; total: number; leftMs: number }
  | { type: "line"; study: StudyName; line: string }
  | { type: "done"; study: StudyName; ok: boolean; ms: number; error?: string };

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** `some avg10` from `/proc/pressure/cpu`, or null where the kernel has no PSI. */
export function cpuPressure(): number | null {
  return readPressure()?.avg10 ?? null;
}

/** The CPU's name; some virtual machines give only the vendor, family and model numbers. */
export function cpuModel(cpuinfo: string): string {
  const field = (name: string) =>
    cpuinfo.match(new RegExp(`^${name}\\s*:\\s*(.+)$`, "m"))?.[1]?.trim();
  const name = field("model name");
  if (name) return name;
  const vendor = field("vendor_id");
  if (!vendor) return "unknown CPU";
  return `${vendor} family ${field("cpu family") ?? "?"} model ${field("model") ?? "?"}`;
}

/** What the lab records about the machine. */
export function machineInfo(): Omit<MachineInfo, "cpuPressureAfter"> & {
  cpuPressureAfter: number | null;
} {
  const cpuinfo = readText("/proc/cpuinfo") ?? "";
  let memoryBytes = 0;
  try {
    memoryBytes = Deno.systemMemoryInfo().total;
  } catch {
    // Not permitted or not supported: recorded as 0.
  }
  let hostname = "";
  try {
    hostname = Deno.hostname();
  } catch {
    hostname = "";
  }
  let kernel = "";
  try {
    kernel = Deno.osRelease();
  } catch {
    kernel = "";
  }
  const osRelease = readText("/etc/os-release") ?? "";
  return {
    hostname,
    os: osRelease.match(/^PRETTY_NAME="?([^"\n]+)"?/m)?.[1] ?? Deno.build.os,
    kernel,
    arch: Deno.build.arch,
    cpuModel: cpuModel(cpuinfo),
    cores: navigator.hardwareConcurrency,
    memoryBytes,
    denoVersion: Deno.version.deno,
    v8Version: Deno.version.v8,
    cpuPressureBefore: cpuPressure(),
    cpuPressureAfter: null,
  };
}

/** The program and arguments that run one study. */
export function studyCommand(study: StudyName, options: LabOptions): [string, string[]] {
  const root = options.root.replace(/\/$/, "");
  const benchArgs = ["bench", "--study", "--scale", options.scale, "--json"];
  if (options.from === "binary") return [`${root}/${study}`, benchArgs];
  const program = options.from === "source" ? `${root}/${study}/main.ts` : `${root}/${study}.js`;
  return [Deno.execPath(), [
    "run",
    "--quiet",
    "--no-prompt",
    "--unstable-net",
    ...BENCH_PERMISSIONS,
    ...(EXTRA_PERMISSIONS[study] ?? []),
    program,
    ...benchArgs,
  ]];
}

async function runStudy(
  study: StudyName,
  options: LabOptions,
): Promise<{ report: StudyReport } | { failure: StudyFailure }> {
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS[options.scale];
  const [program, args] = studyCommand(study, options);
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const tail: string[] = [];
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, timeoutMs);
  const onAbort = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  };
  options.signal?.addEventListener("abort", onAbort);
  const stderrDone = (async () => {
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (line.trim() === "") continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        options.onEvent?.({ type: "line", study, line });
      }
    }
  })();
  const stdoutText = new Response(child.stdout).text();
  try {
    const [status, text] = await Promise.all([child.status, stdoutText, stderrDone]).then((
      [s, t],
    ) => [s, t] as const);
    if (timedOut) {
      return {
        failure: { study, error: `timed out after ${timeoutMs / 1000} s`, stderrTail: tail },
      };
    }
    let doc: { results?: unknown; error?: string | null };
    try {
      doc = JSON.parse(text);
    } catch {
      return {
        failure: {
          study,
          error: `exit code ${status.code}; its output was not one JSON document`,
          stderrTail: tail,
        },
      };
    }
    if (status.code !== 0 || doc.error) {
      return {
        failure: {
          study,
          error: `exit code ${status.code}: ${doc.error ?? "no error message"}`,
          stderrTail: tail,
        },
      };
    }
    const problems = validateStudyReport(doc.results);
    if (problems.length > 0) {
      return {
        failure: {
          study,
          error: `its report does not match the StudyReport schema: ${problems.join("; ")}`,
          stderrTail: tail,
        },
      };
    }
    return { report: doc.results as StudyReport };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** Runs the selected studies and writes the report; returns what it wrote. */
export async function runLab(options: LabOptions): Promise<LabResults> {
  const started = performance.now();
  const machine = machineInfo();
  const studies: StudyReport[] = [];
  const failures: StudyFailure[] = [];
  const selected = STUDY_NAMES.filter((s) => options.only.includes(s));
  for (const [index, study] of selected.entries()) {
    // Stopped (SIGINT/SIGTERM): the report keeps the studies so far.
    if (options.signal?.aborted) break;
    options.onEvent?.({
      type: "start",
      study,
      index,
      total: selected.length,
      leftMs: selected.slice(index).reduce((sum, s) => sum + EXPECTED_MS[options.scale][s], 0),
    });
    const t0 = performance.now();
    const outcome = await runStudy(study, options);
    if ("report" in outcome) studies.push(outcome.report);
    else failures.push(outcome.failure);
    options.onEvent?.({
      type: "done",
      study,
      ok: "report" in outcome,
      ms: performance.now() - t0,
      error: "failure" in outcome ? outcome.failure.error : undefined,
    });
  }
  machine.cpuPressureAfter = cpuPressure();
  const results: LabResults = {
    tool: "lab",
    version: VERSION,
    generatedAt: new Date().toISOString(),
    machine,
    options: { scale: options.scale, only: selected, from: options.from, out: options.out },
    studies,
    failures,
    elapsedMs: Math.round(performance.now() - started),
  };
  await writeLabReport(options.out, results);
  return results;
}

/** Writes index.html, README.md, results.json and plots/*.svg into `dir`. */
export async function writeLabReport(dir: string, results: LabResults): Promise<string[]> {
  const base = dir.replace(/\/$/, "");
  await Deno.mkdir(`${base}/plots`, { recursive: true });
  const written: string[] = [];
  const svgs: string[][] = [];
  for (const study of results.studies) {
    const list: string[] = [];
    for (const [j, plot] of study.plots.entries()) {
      const svg = await renderLinePlot(plot);
      const path = `${base}/plots/${study.study}-${j + 1}.svg`;
      await Deno.writeTextFile(path, svg);
      written.push(path);
      list.push(svg);
    }
    svgs.push(list);
  }
  const files: [string, string][] = [
    ["index.html", renderLabHtml(results, svgs)],
    ["README.md", renderLabMarkdown(results)],
    ["results.json", JSON.stringify(results, null, 2) + "\n"],
  ];
  for (const [name, text] of files) {
    await Deno.writeTextFile(`${base}/${name}`, text);
    written.push(`${base}/${name}`);
  }
  return written;
}

/** Checks a `results.json` value; returns the problems (empty when it conforms). */
export function validateLabResults(value: unknown, expectStudies?: readonly string[]): string[] {
  const problems: string[] = [];
  if (typeof value !== "object" || value === null) return ["results: not an object"];
  const r = value as Record<string, unknown>;
  if (r.tool !== "lab") problems.push('tool: expected "lab"');
  if (typeof r.version !== "string") problems.push("version: expected a string");
  if (typeof r.generatedAt !== "string" || Number.isNaN(Date.parse(r.generatedAt))) {
    problems.push("generatedAt: expected an ISO date");
  }
  const m = r.machine as Record<string, unknown> | undefined;
  if (!m || typeof m !== "object") problems.push("machine: expected an object");
  else {
    for (const key of ["cores", "memoryBytes"]) {
      if (typeof m[key] !== "number") problems.push(`machine.${key}: expected a number`);
    }
    for (const key of ["os", "kernel", "arch", "cpuModel", "denoVersion"]) {
      if (typeof m[key] !== "string") problems.push(`machine.${key}: expected a string`);
    }
  }
  if (typeof r.options !== "object" || r.options === null) {
    problems.push("options: expected an object");
  }
  if (!Array.isArray(r.studies)) problems.push("studies: expected an array");
  else {
    r.studies.forEach((s, i) => {
      for (const p of validateStudyReport(s)) problems.push(`studies[${i}].${p}`);
    });
  }
  if (!Array.isArray(r.failures)) problems.push("failures: expected an array");
  else if (r.failures.length > 0) {
    for (const f of r.failures as StudyFailure[]) {
      problems.push(`study ${f.study} failed: ${f.error}`);
    }
  }
  if (typeof r.elapsedMs !== "number") problems.push("elapsedMs: expected a number");
  if (expectStudies && Array.isArray(r.studies)) {
    const got = new Set((r.studies as StudyReport[]).map((s) => s.study));
    for (const name of expectStudies) {
      if (!got.has(name as StudyName)) problems.push(`studies: ${name} is missing`);
    }
  }
  return problems;
}
