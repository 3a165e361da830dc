/**
 * Builds one executable per tool.
 *
 * - `bundle`: `dist/<tool>.js`, a bundle with a `deno run` shebang granting the
 *   tool's permissions, marked executable, and its lazily loaded modules in
 *   `dist/<tool>.chunks/`.
 * - `compile`: `dist/<tool>`, a self-contained binary (`deno compile`, which needs
 *   its `denort` runtime; it cannot be downloaded on machines without network).
 *
 * Usage: `deno task bundle [tool...]`, `deno task compile [tool...] [--target T]`.
 *
 * @module
 */

/** What every tool may do: its files, its network, its children and their environment. */
const COMMON_PERMISSIONS = [
  "--allow-env",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-run",
];

/** Permissions each tool needs, the same for its task, its bundle and its binary. */
export const PERMISSIONS: Record<string, string[]> = {
  // --allow-sys=hostname: the scan report names the host; --allow-ffi: the libc connect engine.
  scanner: [...COMMON_PERMISSIONS, "--allow-sys=hostname", "--allow-ffi"],
  // --allow-ffi: MD5 through libcrypto (node:crypto when not permitted).
  transfer: [...COMMON_PERMISSIONS, "--allow-ffi"],
  // --allow-ffi: process mode talks to its children over the shared-memory channel.
  taskserver: [...COMMON_PERMISSIONS, "--allow-ffi"],
  // --allow-ffi: UDP and TCP sends and receives through libc.
  interarrival: [...COMMON_PERMISSIONS, "--allow-ffi"],
  // --allow-ffi: the shared-memory child channel and the FFI transports.
  ipcbench: [...COMMON_PERMISSIONS, "--allow-ffi"],
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

async function run(args: string[], cwd: string | URL = root): Promise<void> {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`deno ${args.join(" ")} failed with exit code ${code}`);
}

const EAGER_REQUIRE =
  'import { createRequire as __deno_internal_createRequire } from "node:module";\n' +
  "var __require = __deno_internal_createRequire(import.meta.url);\n";

/**
 * Deno reads and parses, at start, every module a program could import with a
 * literal `import("./chunk.mjs")`, so a bundle's start would pay for all its
 * chunks (Vega, the command line, the bench) although a command loads few. A
 * specifier Deno cannot read ahead (`import(String("./chunk.mjs"))`, the same
 * module, resolved from the same file) is loaded only when the import runs:
 * scanner's one-port scan opened 35 chunk files before, 11 after.
 */
function deferChunkImports(code: string): string {
  return code.replace(/import\((["'])(\.\/[\w./-]+\.mjs)\1\)/g, "import(String($1$2$1))");
}

/**
 * A source module may defer an import the same way for a start from source
 * (`import(String("./cli.ts")) as Promise<typeof import("./cli.ts")>`: `deno run`
 * then reads ahead only the modules a command loads). The bundler and the
 * compiler follow literal imports only, so they read a copy of the sources in
 * which those imports are literal again.
 */
const DEFERRED_IMPORT = /import\(String\((["'])([^"']+)\1\)\)/g;
const NOT_SOURCES = new Set([".git", "dist", "lab-report", "bench-out", "node_modules"]);

/** A temporary copy of the project with deferred imports made literal; remove it after use. */
async function literalSources(): Promise<string> {
  const copy = await Deno.makeTempDir({ prefix: "netconc-build-" });
  const walk = async (from: URL, to: string) => {
    for await (const entry of Deno.readDir(from)) {
      if (NOT_SOURCES.has(entry.name)) continue;
      const source = new URL(entry.name + (entry.isDirectory ? "/" : ""), from);
      const target = `${to}/${entry.name}`;
      if (entry.isDirectory) {
        await Deno.mkdir(target);
        await walk(source, target);
      } else if (entry.isFile && /\.(ts|js|mjs)$/.test(entry.name)) {
        const code = await Deno.readTextFile(source);
        await Deno.writeTextFile(target, code.replace(DEFERRED_IMPORT, "import($1$2$1)"));
      } else if (entry.isFile) await Deno.copyFile(source, target);
    }
  };
  await walk(root, copy);
  return copy;
}

/**
 * The bundler gives CommonJS packages (commander, cli-progress) a `require` made
 * at load time from `node:module`, which loads Node compatibility into every
 * start, even for commands that never load those packages. Made on first use instead.
 */
function lazyRequire(code: string): string {
  return code.replace(
    EAGER_REQUIRE,
    "var __deno_internal_require;\n" +
      "var __require = (id) => (__deno_internal_require ??= globalThis.process.getBuiltinModule(" +
      '"node:module").createRequire(import.meta.url))(id);\n',
  );
}

/**
 * Bundles a target into `dist/<tool>.js` (the program: run it, copy it with its
 * chunk folder) and `dist/<tool>.chunks/` (modules loaded on first use: tables,
 * plots, the benchmark, the command line). Code splitting keeps start-up as fast
 * as from source: one 2.2 MB file made every start parse Vega and the Node
 * compatibility layer, which most commands never use.
 */
async function bundle(tool: string): Promise<string> {
  const out = new URL(`${tool}.js`, dist).pathname;
  const chunks = new URL(`${tool}.chunks/`, dist).pathname;
  const staging = await Deno.makeTempDir({ dir: dist.pathname, prefix: `.${tool}-` });
  const sources = await literalSources();
  try {
    await run([
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      "--code-splitting",
      "--outdir",
      staging,
      TARGETS[tool].entry,
    ], sources);
    const entryName = TARGETS[tool].entry.split("/").pop()!.replace(/\.ts$/, ".js");
    const body = await Deno.readTextFile(`${staging}/${entryName}`);
    await Deno.remove(`${staging}/${entryName}`);
    const names = new Set([...Deno.readDirSync(staging)].map((entry) => entry.name));
    // Chunks become `.mjs`: Deno then knows they are ES modules without checking
    // each `.js` file for CommonJS. The entry moves up one folder: its imports of
    // chunks gain the folder's name.
    const chunkImport = (folder: string) => (whole: string, quote: string, name: string) =>
      names.has(name) ? `${quote}./${folder}${name.replace(/\.js$/, ".mjs")}${quote}` : whole;
    const importPattern = /(["'])\.\/([\w.-]+\.js)\1/g;
    const program = body.replace(importPattern, chunkImport(`${tool}.chunks/`));
    for (const name of names) {
      const path = `${staging}/${name}`;
      const code = (await Deno.readTextFile(path)).replace(importPattern, chunkImport(""));
      await Deno.writeTextFile(path.replace(/\.js$/, ".mjs"), deferChunkImports(lazyRequire(code)));
      if (name.endsWith(".js")) await Deno.remove(path);
    }
    await Deno.remove(chunks, { recursive: true }).catch(() => {});
    await Deno.rename(staging, chunks);
    // `env -S` splits the flags; `--unstable-net` enables `reusePort` for the pooled servers.
    const shebang = `#!/usr/bin/env -S deno run --quiet --no-prompt --unstable-net ${
      TARGETS[tool].permissions.join(" ")
    }\n`;
    const entry = deferChunkImports(lazyRequire(program.replace(/^#!.*\n/, "")));
    await Deno.writeTextFile(out, shebang + entry);
    await Deno.chmod(out, 0o755);
    return out;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.remove(sources, { recursive: true }).catch(() => {});
  }
}

/**
 * Compiles a target into `dist/<tool>`, or `dist/<tool>-<target>[.exe]` for
 * another platform (`--target x86_64-pc-windows-msvc`, as `deno compile` names them).
 */
async function compile(tool: string, target?: string): Promise<string> {
  const name = target ? `${tool}-${target}${target.includes("windows") ? ".exe" : ""}` : tool;
  const out = new URL(name, dist).pathname;
  // The entry module is also the worker and child entry, so no `--include` is needed.
  const sources = await literalSources();
  try {
    await run([
      "compile",
      "--quiet",
      "--unstable-net",
      ...TARGETS[tool].permissions,
      ...(target ? ["--target", target] : []),
      "-o",
      out,
      TARGETS[tool].entry,
    ], sources);
  } finally {
    await Deno.remove(sources, { recursive: true }).catch(() => {});
  }
  return out;
}

if (import.meta.main) {
  const [action, ...rest] = Deno.args;
  const targetAt = rest.indexOf("--target");
  const target = targetAt === -1 ? undefined : rest[targetAt + 1];
  if (targetAt !== -1 && (action !== "compile" || !target)) {
    console.error("build: --target <triple> goes with compile, e.g. --target aarch64-apple-darwin");
    Deno.exit(2);
  }
  const names = targetAt === -1
    ? rest
    : rest.filter((_, i) => i !== targetAt && i !== targetAt + 1);
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
      const out = action === "bundle" ? await bundle(tool) : await compile(tool, target);
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
