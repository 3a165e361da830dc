/**
 * Start-up of the bundles against the sources, measured in one hyperfine run:
 * each tool's `--version` and its fastest command, from `dist/<tool>.js` and
 * from `deno run <tool>/main.ts`, with CPU pressure before and after.
 *
 * Usage: `deno task bundle && deno run -A tools/start_ratio.ts [--runs N]`
 * (needs hyperfine). Prints one line per command: source ms, bundle ms, ratio.
 *
 * @module
 */
import { pressureLine } from "../shared/pressure.ts";
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

const commands: { tool: string; args: string[]; from: "source" | "bundle"; line: string }[] = [];
for (const tool of TOOLS) {
  for (const args of [["--version"], FASTEST[tool]]) {
    const flags = ["--quiet", "--no-prompt", "--unstable-net", ...PERMISSIONS[tool]].join(" ");
    const rest = args.join(" ");
    commands.push({
      tool,
      args,
      from: "source",
      line: `deno run ${flags} ${root}${tool}/main.ts ${rest}`,
    });
    commands.push({ tool, args, from: "bundle", line: `${root}dist/${tool}.js ${rest}` });
  }
}

const before = pressureLine();
const json = await Deno.makeTempFile({ suffix: ".json" });
const { code } = await new Deno.Command("hyperfine", {
  args: [
    "-N",
    "-i",
    "-w",
    "3",
    "-r",
    String(runs),
    "--export-json",
    json,
    ...commands.map((c) => c.line),
  ],
  stdout: "null",
  stderr: "inherit",
}).output();
if (code !== 0) Deno.exit(code);
const after = pressureLine();
const results = JSON.parse(await Deno.readTextFile(json)).results as {
  mean: number;
  median: number;
  user: number;
}[];
await Deno.remove(json);
console.log(`runs ${runs}; /proc/pressure/cpu before: ${before}`);
console.log("command | source median ms | bundle median ms | ratio (median) | ratio (user CPU)");
for (let i = 0; i < commands.length; i += 2) {
  const [source, bundle] = [results[i], results[i + 1]];
  const name = `${commands[i].tool} ${commands[i].args.join(" ")}`;
  console.log(
    `${name} | ${(source.median * 1000).toFixed(1)} | ${(bundle.median * 1000).toFixed(1)} | ${
      (bundle.median / source.median).toFixed(2)
    } | ${(bundle.user / source.user).toFixed(2)}`,
  );
}
console.log(`/proc/pressure/cpu after: ${after}`);
