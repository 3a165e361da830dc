/**
 * Builds one executable per tool.
 *
 * - `bundle`: `dist/<tool>.js`, a single-file bundle with a `deno run` shebang
 *   granting the tool's permissions, marked executable.
 * - `compile`: `dist/<tool>`, a self-contained binary (`deno compile`, which needs
 *   its `denort` runtime; it cannot be downloaded on machines without network).
 *
 * Usage: `deno task bundle [tool...]`, `deno task compile [tool...]`.
 *
 * @module
 */

/** Permissions each tool needs, the same for its task, its bundle and its binary. */
export const PERMISSIONS: Record<string, string[]> = {
  scanner: [
    "--allow-env",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-run",
    "--allow-sys=hostname",
    "--allow-ffi",
  ],
  transfer: ["--allow-env", "--allow-net", "--allow-read", "--allow-write", "--allow-run"],
  taskserver: ["--allow-env", "--allow-net", "--allow-read", "--allow-write", "--allow-run"],
  interarrival: ["--allow-env", "--allow-net", "--allow-read", "--allow-write", "--allow-run"],
  ipcbench: ["--allow-env", "--allow-net", "--allow-read", "--allow-write", "--allow-run"],
};

/** The tools, in the order the README lists them. */
export const TOOLS = Object.keys(PERMISSIONS);

/** The lab runs the tools' bundles that sit next to it (`dist/lab.js`). */
const LAB_PERMISSIONS = [
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-sys",
];

/** What can be built: the five tools and the lab. */
const TARGETS: Record<string, { entry: string; permissions: string[] }> = {
  ...Object.fromEntries(
    TOOLS.map((tool) => [tool, { entry: `${tool}/main.ts`, permissions: PERMISSIONS[tool] }]),
  ),
  lab: { entry: "tools/lab.ts", permissions: LAB_PERMISSIONS },
};

const root = new URL("../", import.meta.url);
const dist = new URL("dist/", root);

async function run(args: string[]): Promise<void> {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`deno ${args.join(" ")} failed with exit code ${code}`);
}

async function bundle(tool: string): Promise<string> {
  const out = new URL(`${tool}.js`, dist).pathname;
  await run(["bundle", "--quiet", "--platform", "deno", "-o", out, TARGETS[tool].entry]);
  const body = await Deno.readTextFile(out);
  // `env -S` splits the flags; `--unstable-net` enables `reusePort` for the pooled servers.
  const shebang = `#!/usr/bin/env -S deno run --quiet --no-prompt --unstable-net ${
    TARGETS[tool].permissions.join(" ")
  }\n`;
  await Deno.writeTextFile(out, shebang + body.replace(/^#!.*\n/, ""));
  await Deno.chmod(out, 0o755);
  return out;
}

async function compile(tool: string): Promise<string> {
  const out = new URL(tool, dist).pathname;
  // The entry module is also the worker and child entry, so no `--include` is needed.
  await run([
    "compile",
    "--quiet",
    "--unstable-net",
    ...TARGETS[tool].permissions,
    "-o",
    out,
    TARGETS[tool].entry,
  ]);
  return out;
}

if (import.meta.main) {
  const [action, ...names] = Deno.args;
  const tools = names.length > 0 ? names : Object.keys(TARGETS);
  for (const tool of tools) {
    if (!(tool in TARGETS)) {
      console.error(
        `build: unknown target '${tool}' (expected one of ${Object.keys(TARGETS).join(", ")})`,
      );
      Deno.exit(2);
    }
  }
  if (action !== "bundle" && action !== "compile") {
    console.error(`build: unknown action '${action ?? ""}' (expected bundle or compile)`);
    Deno.exit(2);
  }
  await Deno.mkdir(dist, { recursive: true });
  for (const tool of tools) {
    try {
      const out = action === "bundle" ? await bundle(tool) : await compile(tool);
      console.error(`built ${out}`);
    } catch (error) {
      // Deno has already printed why; say which step failed, without a stack trace.
      const hint = action === "compile"
        ? " (deno compile downloads its denort runtime from dl.deno.land; `deno task bundle` needs no download)"
        : "";
      console.error(`build: ${action} ${tool} failed: ${(error as Error).message}${hint}`);
      Deno.exit(1);
    }
  }
}
