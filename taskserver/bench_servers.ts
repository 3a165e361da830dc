/**
 * The servers `taskserver bench` measures, each started as its own process so
 * the load generator never shares its event loop: `taskserver serve` in any
 * design, and the study's Python servers (stdlib, thread or fork per client) as
 * baselines.
 *
 * @module
 */
import { type Peer, preparePeer, selfCommand, startPeer } from "../shared/peer.ts";
import type { Mode } from "../shared/mode.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Engine, EngineChoice } from "./ffi_libc.ts";

/** A server design under test. */
export interface ServerSpec {
  /** Column and series name, e.g. `thread per client`. */
  label: string;
  kind: "taskserver" | "python";
  mode?: Mode;
  perClient?: boolean;
  workers?: number;
  /** python: `thread` (thread per client) or `fork` (process per client). */
  python?: "thread" | "fork";
  /** python: `study` (recv(1024), bare request, as the study) or `line`. */
  framing?: "study" | "line";
  /** taskserver: its engine (`serve --engine`; default auto). */
  engine?: EngineChoice;
}

export { PYTHON_MAX_CLIENTS } from "./study_plans.ts";

/** A server started for a run. */
export interface LaunchedServer {
  port: number;
  /** The server's process (its CPU time, children included, is read from /proc). */
  pid: number;
  /** taskserver: the engine it runs on (`ffi` or `deno`). */
  engine?: Engine;
  stop(): Promise<void>;
}

/** Where `taskserver serve` starts from: the given entry, else the running program. */
export function defaultEntry(): string {
  return Deno.mainModule ?? new URL("./main.ts", import.meta.url).href;
}

// Servers log on stderr; a stop gives them 8 s to close before SIGKILL.
const PEER_OPTIONS = { stderr: "inherit", timeoutMs: 30_000, graceMs: 8000 } as const;

/** Starts `taskserver serve` on a free loopback port as a child process. */
export async function launchTaskServer(
  spec: ServerSpec,
  delayMs: number,
  entry = defaultEntry(),
): Promise<LaunchedServer> {
  const command = selfCommand([
    "serve",
    "--host=127.0.0.1",
    "--port=0",
    "--json",
    "--quiet",
    `--mode=${spec.mode ?? "async"}`,
    `--workers=${spec.workers ?? 2}`,
    `--delay=${delayMs}`,
    "--idle-timeout=120000",
    ...(spec.perClient ? ["--per-client"] : []),
    `--engine=${spec.engine ?? "auto"}`,
  ], { entry });
  let peer: Peer | undefined;
  try {
    peer = await startPeer(command.command, { ...PEER_OPTIONS, args: command.args });
    peer.drain();
    const { port, engine } = JSON.parse(peer.firstLine).results;
    return { port, pid: peer.child.pid, stop: peer.stop, engine };
  } catch (error) {
    await peer?.stop();
    throw new Error(`could not start taskserver (${spec.label}): ${errorMessage(error)}`);
  }
}

/**
 * The study's servers (stdlib Python), as baselines: thread or fork per client;
 * `study` framing is its benchmark server (recv 1024, sleep, reverse); `line`
 * framing answers `choice|payload` lines like ours.
 */
export const PYTHON_SERVER = `
import os, signal, socket, sys, threading, time
mode, delay, framing, backlog = sys.argv[1], float(sys.argv[2]) / 1000, sys.argv[3], int(sys.argv[4])

def process_request(data):
    try:
        choice, payload = data.split('|', 1)
        if choice == '1':
            return payload.swapcase()
        elif choice == '3':
            return payload[::-1]
        return "Invalid choice"
    except Exception as e:
        return f"Error: {str(e)}"

def handle_study(conn):
    with conn:
        while True:
            data = conn.recv(1024).decode()
            if not data:
                break
            time.sleep(delay)
            conn.sendall(data[::-1].encode())

def handle_lines(conn):
    with conn:
        f = conn.makefile('rb')
        for line in f:
            if delay:
                time.sleep(delay)
            conn.sendall((process_request(line.rstrip(b'\\n').decode()) + '\\n').encode())

handler = handle_study if framing == 'study' else handle_lines
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0))
s.listen(backlog)
print(s.getsockname()[1], flush=True)
while True:
    conn, addr = s.accept()
    if mode == 'fork':
        if os.fork() == 0:
            s.close()
            handler(conn)
            os._exit(0)
        conn.close()
    else:
        threading.Thread(target=handler, args=(conn,), daemon=True).start()
`;

/** True when python3 runs here. */
export async function havePython(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("python3", {
      args: ["-c", "pass"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/** Starts the study's Python server (see {@linkcode PYTHON_SERVER}). */
export async function launchPythonServer(
  spec: ServerSpec,
  delayMs: number,
): Promise<LaunchedServer> {
  const program = await preparePeer({
    name: "server_side",
    language: "python",
    source: PYTHON_SERVER,
  });
  try {
    // Python's default listen() backlog is min(128, SOMAXCONN).
    const peer = await startPeer(program.argv[0], {
      ...PEER_OPTIONS,
      args: [
        ...program.argv.slice(1),
        spec.python ?? "thread",
        String(delayMs),
        spec.framing ?? "line",
        "128",
      ],
      timeoutMs: 10_000,
    });
    peer.drain();
    return {
      port: Number(peer.firstLine),
      pid: peer.child.pid,
      stop: () => peer.stop().finally(program.close),
    };
  } catch (error) {
    await program.close();
    throw new Error(`could not start python3 (${spec.label}): ${errorMessage(error)}`);
  }
}

/** Starts a server of either kind. */
export function launch(spec: ServerSpec, delayMs: number, entry?: string): Promise<LaunchedServer> {
  return spec.kind === "python"
    ? launchPythonServer(spec, delayMs)
    : launchTaskServer(spec, delayMs, entry);
}
