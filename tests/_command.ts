/**
 * Running programs from tests: a tool's `main.ts` from source, or any command,
 * to completion, with its exit code and text output.
 *
 * @module
 */
import { assertEquals, assertOk } from "./_assert.ts";

/** What a finished program left. */
export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command args` to completion (stdin closed unless given) and captures its output. */
export async function capture(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Captured> {
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

/**
 * Runs `<tool>/main.ts` from source with every permission and `NO_COLOR=1`, as a
 * user would run `deno task <tool> -- args`.
 */
export function runTool(tool: string, args: string[], options: { stdin?: string } = {}) {
  const main = new URL(`../${tool}/main.ts`, import.meta.url).pathname;
  return capture(
    Deno.execPath(),
    ["run", "--quiet", "--allow-all", "--unstable-net", main, ...args],
    { env: { NO_COLOR: "1" }, stdin: options.stdin },
  );
}

/** A tool started by {@linkcode spawnTool}, still running. */
export interface SpawnedTool {
  child: Deno.ChildProcess;
  /** Everything it writes on stdout, once it exits. */
  stdout: Promise<string>;
  /** Reads stderr until it contains `text` (or ends), and returns what was read so far. */
  stderrUntil(text: string): Promise<string>;
  /** Reads stderr to its end and returns all of it. */
  stderrToEnd(): Promise<string>;
}

/** Starts `<tool>/main.ts` from source (as {@linkcode runTool}) without waiting for it. */
export function spawnTool(tool: string, args: string[]): SpawnedTool {
  const main = new URL(`../${tool}/main.ts`, import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", "--unstable-net", main, ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let ended = false;
  const stderrUntil = async (text: string | null) => {
    while (!ended && (text === null || !seen.includes(text))) {
      const { value, done } = await reader.read();
      if (done) ended = true;
      else seen += value;
    }
    return seen;
  };
  return {
    child,
    stdout: new Response(child.stdout).text(),
    stderrUntil,
    stderrToEnd: () => stderrUntil(null),
  };
}

/**
 * Runs `tool` with each case's arguments (all at once) and asserts each exits 2
 * (a usage error) with its expected text on stderr and nothing on stdout.
 */
export async function assertUsageErrors(
  tool: string,
  cases: readonly (readonly [string[], string])[],
): Promise<void> {
  const results = await Promise.all(cases.map(([args]) => runTool(tool, args)));
  results.forEach((result, i) => {
    const [args, message] = cases[i];
    const what = `${tool} ${args.join(" ")}: ${result.stderr}`;
    assertEquals([result.code, result.stdout], [2, ""], what);
    assertOk(result.stderr.includes(message), what);
  });
}
