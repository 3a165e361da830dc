/**
 * What the operating system says about placement and load: thread CPU time from
 * `/proc/thread-self/schedstat` (nanoseconds), the CPU a thread last ran on,
 * pinning with `taskset`, and `/proc/pressure/cpu`.
 *
 * Deno lets a program read `/proc/self` and `/proc/<pid>` only with
 * `--allow-all`; without it, thread CPU time falls back to
 * `process.threadCpuUsage()` (10 ms ticks), placement to what was requested,
 * and the CPU list to `taskset`'s answer. Process CPU time always comes from
 * `process.cpuUsage()` (getrusage, microseconds).
 *
 * @module
 */
import process from "node:process";

/** How the two sides of a ping-pong are placed on CPUs. */
export type Pin = "same" | "split" | "none";

/** All pinning modes, in the order tables list them. */
export const PINS: readonly Pin[] = ["same", "split", "none"];

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** Where thread CPU time comes from: precise with `--allow-all`, ticks without. */
export type CpuSource = "schedstat" | "rusage-ticks";

/** The source {@linkcode threadCpuMs} uses in this isolate. */
export function threadCpuSource(): CpuSource {
  return readText("/proc/thread-self/schedstat") === null ? "rusage-ticks" : "schedstat";
}

/** CPU time of the calling thread in milliseconds. */
export function threadCpuMs(): number {
  const text = readText("/proc/thread-self/schedstat");
  if (text !== null) return Number(text.split(" ")[0]) / 1e6;
  // deno-lint-ignore no-explicit-any
  const usage = (process as any).threadCpuUsage?.() as { user: number; system: number } | undefined;
  return usage ? (usage.user + usage.system) / 1000 : NaN;
}

/** CPU time of this whole process (all its threads) in milliseconds. */
export function processCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** Where a thread may run and where it last ran (`null` where /proc is closed to us). */
export interface Placement {
  /** `Cpus_allowed_list`, e.g. `0` or `0-1`. */
  allowed: string;
  /** The CPU the thread last ran on. */
  lastCpu: number | null;
}

/** The calling thread's placement; `fallback` is reported when /proc cannot be read. */
export function threadPlacement(fallback = "?"): Placement {
  const status = readText("/proc/thread-self/status");
  if (status === null) return { allowed: fallback, lastCpu: null };
  const allowed = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] ?? "?";
  const stat = readText("/proc/thread-self/stat") ?? "";
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Field 39 of stat ("processor"); the slice starts at field 3.
  const lastCpu = Number(fields[36]);
  return { allowed, lastCpu: Number.isFinite(lastCpu) ? lastCpu : null };
}

/** Expands a CPU list such as `0-1,3` into ids. */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.split(",")) {
    const [lo, hi] = part.split("-").map(Number);
    for (let cpu = lo; cpu <= (hi ?? lo); cpu++) cpus.push(cpu);
  }
  return cpus;
}

/**
 * The id of the calling thread: from /proc when readable, else the pid (the
 * main thread's id under `deno run`; `deno test` may run tests on another thread).
 */
export function callingThreadId(): number {
  try {
    return Number(Deno.readLinkSync("/proc/thread-self").split("/").pop());
  } catch {
    return Deno.pid;
  }
}

/** The calling thread's CPU list, asked of `taskset` (which needs no /proc permission). */
export function mainThreadCpuList(): string | null {
  try {
    const output = new Deno.Command("taskset", {
      args: ["-c", "-p", String(callingThreadId())],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return /list:\s*(\S+)/.exec(new TextDecoder().decode(output.stdout))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** The CPUs the main thread may use, as a list of ids. */
export function allowedCpus(): number[] {
  const status = readText("/proc/thread-self/status");
  const list = status ? /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] : mainThreadCpuList();
  if (list) return parseCpuList(list);
  return Array.from({ length: navigator.hardwareConcurrency || 1 }, (_, i) => i);
}

/**
 * The CPU lists for the measuring side and the echo side under `pin`, or
 * `undefined` for no pinning; throws when `split` needs two CPUs and has one.
 */
export function pinCpus(pin: Pin, cpus = allowedCpus()): { pinger?: string; echo?: string } {
  if (pin === "none") return {};
  if (pin === "same") return { pinger: String(cpus[0]), echo: String(cpus[0]) };
  if (cpus.length < 2) throw new Error("--pin split needs two CPUs; this process may use one");
  return { pinger: String(cpus[0]), echo: String(cpus[1]) };
}

/** Pins one thread (by id) to a CPU list with `taskset -p -c`. */
export async function pinThread(tid: number, cpus: string): Promise<void> {
  const output = await new Deno.Command("taskset", {
    args: ["-p", "-c", cpus, String(tid)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!output.success) {
    const why = new TextDecoder().decode(output.stderr).trim();
    throw new Error(`Cannot pin thread ${tid} to CPU ${cpus}: taskset failed (${why})`);
  }
}

/**
 * Pins the calling (main) thread; returns its previous CPU list for restoring.
 * A worker created while it is pinned inherits the pin: that is how workers are
 * placed, without needing their thread ids.
 */
export async function pinMainThread(cpus: string): Promise<string> {
  const before = mainThreadCpuList() ?? allowedCpus().join(",");
  await pinThread(callingThreadId(), cpus);
  return before;
}

// CPU pressure lives in shared/ (every benchmark records it); re-exported for this tool's modules.
export {
  BUSY_THRESHOLD_PCT,
  type Pressure,
  type PressureWindow,
  pressureWindow,
  readPressure,
  wasBusy,
} from "../shared/pressure.ts";
