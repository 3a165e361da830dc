/**
 * Start-up of the bundles against the sources, measured in one run: each tool's
 * `--version` and its fastest command, from `dist/<tool>.js` and from
 * `deno run <tool>/main.ts`, with CPU pressure before and after.
 *
 * Runs alternate (source, bundle, bundle, source, ...) so that a change in the
 * machine's load hits both sides alike; each run's wall time and CPU time (user +
 * system, from bash's `time`) are kept, and the ratios are bundle / source of the
 * medians and of the minimums (the minimum is the least disturbed run on a busy
 * machine).
 *
 * Usage: `deno task bundle && deno run -A tools/start_ratio.ts [--runs N]`.
 *
 * @module
 */
import { pressureLine } from "../shared/pressure.ts";
import { median, min } from "../shared/stats.ts";
import { PERMISSIONS, TOOLS } from "./build.ts";

/** Each tool's fastest command: nothing listens on port 9 (discard) here, so connects are refused at once. */
const FASTEST: Record<string, string[]> = {
  scanner: ["127.0.0.1", "-p", "9"],
  transfer: ["download", "k", "--id", "u", "--port", "9"],
  taskserver: ["call", "reverse", "x", "--port", "9"],
  interarrival: ["--help"],
  ipcbench: ["--help"],
};

const root = new URL("../", import.meta.url).pathname;
const runsAt = Deno.args.indexOf("--runs");
const runs = runsAt === -1 ? 20 : Number(Deno.args[runsAt + 1]);

/** Wall and CPU seconds of one run of `argv` (its output discarded). */
async function timeOnce(argv: string[]): Promise<{ wall: number; cpu: number }> {
  const quoted = argv.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(" ");
  const out = await new Deno.Command("bash", {
    args: ["-c", `TIMEFORMAT='%R %U %S'; time (${quoted} >/dev/null 2>&1)`],
    stdout: "null",
    stderr: "piped",
  }).output();
  const [wall, user, system] = new TextDecoder().decode(out.stderr).trim().split(/\s+/)
    .map(Number);
  return { wall, cpu: user + system };
}

const before = pressureLine();
console.log(`runs ${runs} per side, alternating; /proc/pressure/cpu before: ${before}`);
console.log(
  "command | source median / min ms | bundle median / min ms | ratio median | ratio min | ratio CPU",
);
for (const tool of TOOLS) {
  for (const args of [["--version"], FASTEST[tool]]) {
    const source = [
      Deno.execPath(),
      "run",
      "--quiet",
      "--no-prompt",
      "--unstable-net",
      ...PERMISSIONS[tool],
      `${root}${tool}/main.ts`,
      ...args,
    ];
    const bundle = [`${root}dist/${tool}.js`, ...args];
    // Warm-up: compile caches for both.
    for (let i = 0; i < 2; i++) await Promise.all([timeOnce(source), timeOnce(bundle)]);
    const times: Record<"source" | "bundle", { wall: number; cpu: number }[]> = {
      source: [],
      bundle: [],
    };
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? (["source", "bundle"] as const) : (["bundle", "source"] as const);
      for (const side of order) {
        times[side].push(await timeOnce(side === "source" ? source : bundle));
      }
    }
    const stat = (side: "source" | "bundle", f: (v: number[]) => number, key: "wall" | "cpu") =>
      f(times[side].map((t) => t[key])) * 1000;
    const ratio = (f: (v: number[]) => number, key: "wall" | "cpu") =>
      (stat("bundle", f, key) / stat("source", f, key)).toFixed(2);
    console.log(
      `${tool} ${args.join(" ")} | ${stat("source", median, "wall").toFixed(0)} / ${
        stat("source", min, "wall").toFixed(0)
      } | ${stat("bundle", median, "wall").toFixed(0)} / ${
        stat("bundle", min, "wall").toFixed(0)
      } | ${ratio(median, "wall")} | ${ratio(min, "wall")} | ${ratio(median, "cpu")}`,
    );
  }
}
console.log(`/proc/pressure/cpu after: ${pressureLine()}`);
