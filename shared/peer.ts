/**
 * Peer programs: the baselines a benchmark runs beside a tool (nmap, iperf3,
 * the studies' Python programs, C anchors), started and stopped one way.
 *
 * Sources of Python and C peers are embedded as TypeScript string constants
 * ({@linkcode EmbeddedProgram}, in `<tool>/peers.ts`), never loose files next to
 * the module: a bundle or a compiled binary carries them, and
 * {@linkcode preparePeer} writes them out (compiling C with gcc) into a
 * temporary directory when a run needs them.
 *
 * @module
 */
import { LineOverflow } from "./codec.ts";
import { BufferedReader } from "./reader.ts";
import { errorMessage } from "./errors.ts";
import { CHILD_FLAG, childCommand } from "./runtime.ts";

/** A peer's source, carried as a string so bundles and binaries hold it. */
export interface EmbeddedProgram {
  /** File name without extension, e.g. `study_server`. */
  name: string;
  language: "python" | "c";
  source: string;
  /** Extra gcc flags for C (e.g. `-pthread`); `-O2` is always given. */
  cflags?: string[];
}

/**
 * Python shared by the embedded peers (interpolate it into a program's source):
 * `recv_exact(conn, n)` reads exactly `n` bytes from a socket, `None` at its end.
 */
export const PYTHON_RECV_EXACT = `def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
`;

/** What {@linkcode timedRun} measured. */
export interface TimedRun {
  /** Milliseconds from spawning the program to its exit. */
  ms: number;
  success: boolean;
  /** Its standard output (empty unless `stdout: true`). */
  stdout: string;
}

/**
 * Runs a program to completion (stdin closed, stderr dropped) and times it from
 * spawn to exit: one way for benches to time a whole process (a scan, a client).
 */
export async function timedRun(
  command: string,
  args: string[],
  options: { stdout?: boolean } = {},
): Promise<TimedRun> {
  const started = performance.now();
  const output = await new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: options.stdout ? "piped" : "null",
    stderr: "null",
  }).output();
  const ms = performance.now() - started;
  const stdout = options.stdout ? new TextDecoder().decode(output.stdout) : "";
  return { ms, success: output.success, stdout };
}

/** Options for {@linkcode selfCommand}. */
export interface SelfCommandOptions {
  /** The program's module (default: the main module); ignored by a compiled binary. */
  entry?: string | URL;
  /** CPU list for `taskset -c`. */
  cpus?: string;
  /** Extra Deno flags when run from source or a bundle. */
  denoFlags?: string[];
}

/**
 * The command line that runs this program again with `args` (`serve --port=0`,
 * `bench ...` inside a namespace): the binary itself when compiled
 * (`Deno.build.standalone`), else `deno run` on the main module (source file or
 * bundle) with the permissions this process holds.
 */
export function selfCommand(
  args: string[],
  options: SelfCommandOptions = {},
): { command: string; args: string[] } {
  const entry = (options.entry ?? Deno.mainModule).toString();
  const child = childCommand(entry, { cpus: options.cpus, denoFlags: options.denoFlags });
  return { command: child.command, args: [...child.args.filter((a) => a !== CHILD_FLAG), ...args] };
}

/** True when `command` is an executable file on `PATH` (or a path to one). */
export function which(command: string): boolean {
  const candidates = command.includes("/")
    ? [command]
    : (Deno.env.get("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
      .split(":")
      .filter((dir) => dir !== "").map((dir) => `${dir}/${command}`);
  for (const path of candidates) {
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // Not here.
    }
  }
  return false;
}

/** A peer written out (and compiled) in a temporary directory; `close()` removes it. */
export interface PreparedPeer {
  /** The command line that runs it, before its own arguments. */
  argv: string[];
  dir: string;
  close(): Promise<void>;
}

/**
 * Writes an embedded program into a fresh temporary directory, compiling C with
 * gcc. Throws an error naming what is missing (python3, gcc) or gcc's first line.
 */
export async function preparePeer(program: EmbeddedProgram): Promise<PreparedPeer> {
  const tool = program.language === "python" ? "python3" : "gcc";
  if (!which(tool)) throw new Error(`${program.name}: ${tool} is not installed`);
  const dir = await Deno.makeTempDir({ prefix: `netconc-${program.name}-` });
  const close = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  try {
    if (program.language === "python") {
      const path = `${dir}/${program.name}.py`;
      await Deno.writeTextFile(path, program.source);
      return { argv: ["python3", path], dir, close };
    }
    const source = `${dir}/${program.name}.c`;
    const binary = `${dir}/${program.name}`;
    await Deno.writeTextFile(source, program.source);
    const output = await new Deno.Command("gcc", {
      args: ["-O2", ...(program.cflags ?? []), "-o", binary, source],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!output.success) {
      const why = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
      throw new Error(`${program.name}: gcc failed (${why})`);
    }
    return { argv: [binary], dir, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * Stops a child: SIGTERM, then SIGKILL if it has not exited after `graceMs`.
 * Resolves once it has exited; never throws for a child already gone.
 */
export async function stopProcess(child: Deno.ChildProcess, graceMs = 5000): Promise<void> {
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch {
      // Already gone.
    }
  };
  signal("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    child.status.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
  ]);
  clearTimeout(timer);
  if (!exited) {
    signal("SIGKILL");
    await child.status;
  }
}

/** Kills a child with SIGKILL after `ms` unless cancelled; returns the cancel function. */
export function killAfter(child: Deno.ChildProcess, ms: number): () => void {
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }, ms);
  return () => clearTimeout(timer);
}

/** Options for {@linkcode startPeer}. */
export interface StartPeerOptions {
  args?: string[];
  env?: Record<string, string>;
  /** `inherit` shows the peer's log; default `null`. */
  stderr?: "inherit" | "null" | "piped";
  /** Milliseconds to wait for the first line on stdout (default 30 000). */
  timeoutMs?: number;
  /** Milliseconds between SIGTERM and SIGKILL when stopping (default 5000). */
  graceMs?: number;
  /** Longest first line accepted, in bytes (default 64 KiB). */
  maxLine?: number;
}

/** A running peer that has printed its first line. */
export interface Peer {
  child: Deno.ChildProcess;
  /** Its first line on stdout, without the newline (an address, a port, a JSON document). */
  firstLine: string;
  /** The next line on stdout, or `null` at its end (unless `drain` was set). */
  nextLine(timeoutMs?: number): Promise<string | null>;
  /** Keeps reading stdout and dropping it, so the peer never blocks on a full pipe. */
  drain(): void;
  /** SIGTERM, then SIGKILL after the grace time. */
  stop(): Promise<void>;
}

/**
 * Starts `command` and waits for its first line on stdout (a server printing
 * its address, a client printing ready). Stops it and throws, saying which
 * program and why, when it exits first or the wait times out.
 */
export async function startPeer(command: string, options: StartPeerOptions = {}): Promise<Peer> {
  const child = new Deno.Command(command, {
    args: options.args ?? [],
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: options.stderr ?? "null",
  }).spawn();
  const stop = () => stopProcess(child, options.graceMs);
  const reader = new BufferedReader(child.stdout);
  const maxLine = options.maxLine ?? 1 << 16;
  const nextLine = async (timeoutMs = options.timeoutMs ?? 30_000) => {
    const line = await reader.readLine(maxLine, { timeout: timeoutMs });
    if (line === null) return null;
    if (line instanceof LineOverflow) {
      throw new Error(`${command} printed a line over ${maxLine} bytes`);
    }
    return new TextDecoder().decode(line).replace(/\r$/, "");
  };
  let firstLine: string | null;
  try {
    firstLine = await nextLine();
  } catch (error) {
    await stop();
    throw new Error(`${command} did not start: ${errorMessage(error)}`);
  }
  if (firstLine === null) {
    await stop();
    throw new Error(`${command} did not start: it exited before printing a line`);
  }
  return {
    child,
    firstLine,
    nextLine,
    drain: () => {
      (async () => {
        try {
          while ((await reader.readSome()) !== null);
        } catch {
          // Closed.
        }
      })();
    },
    stop,
  };
}
