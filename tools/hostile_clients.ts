/**
 * Good and hostile clients of the three servers, for the hostile-client tests
 * (tests/hostile_*_test.ts) and the soak (tools/soak.ts):
 *
 * - {@linkcode freshClient}: a new client's first exchange (taskserver `2|1+1`,
 *   transfer `AUTH LOGIN`, interarrival's greeting), timed from connect to reply.
 * - {@linkcode resetConnections}: connections reset (`SO_LINGER {1, 0}`) right
 *   after the handshake, so that they are reset in the server's listen queue.
 * - {@linkcode treeStats}: RSS and open descriptors of a server and its children.
 *
 * @module
 */
import { encodePacket, request } from "../transfer/protocol.ts";

/** The three servers. */
export type ServerKind = "taskserver" | "transfer" | "interarrival";

/** Every server kind. */
export const SERVER_KINDS: readonly ServerKind[] = ["taskserver", "transfer", "interarrival"];

/** What a good client's first exchange is, per server: bytes to send and how a reply starts. */
function firstExchange(kind: ServerKind): { send: Uint8Array | null; expect: string } {
  switch (kind) {
    case "taskserver":
      return { send: new TextEncoder().encode("2|1+1\n"), expect: "2\n" };
    case "transfer":
      return {
        send: encodePacket(request("AUTH", "LOGIN", { username: "soak", password: "x" })),
        expect: '"LOGIN"',
      };
    default:
      return { send: null, expect: "Hello" };
  }
}

/**
 * A burst of clients in python3: opens N connections at once (non-blocking
 * connects, no waiting between them), sends each the request (hex; `{i}` in it
 * becomes the connection's index), reads its reply (`line`: up to a newline or
 * the close; `first`: the first bytes) and prints the replies as one JSON list
 * (`null` for none). Bounded: 60 s.
 */
const BURST_CLIENTS_PY = `
import json, selectors, socket, sys, time

port, n, until = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
template = bytes.fromhex(sys.argv[4]) if len(sys.argv) > 4 else b""
sel = selectors.DefaultSelector()
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    sel.register(s, selectors.EVENT_WRITE, i)
replies, bufs = [None] * n, {}
finished, deadline = 0, time.time() + 60

def finish(s, i, reply):
    global finished
    replies[i] = reply
    sel.unregister(s)
    s.close()
    finished += 1

while finished < n and time.time() < deadline:
    for key, events in sel.select(timeout=1):
        s, i = key.fileobj, key.data
        if events & selectors.EVENT_WRITE:
            try:
                if template:
                    s.sendall(template.replace(b"{i}", str(i).encode()))
                sel.modify(s, selectors.EVENT_READ, i)
            except OSError:
                finish(s, i, None)
            continue
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        bufs[i] = bufs.get(i, b"") + data
        if not data or until == "first" or bufs[i].endswith(b"\\n"):
            finish(s, i, bufs[i].decode("latin-1").strip() if bufs[i] else None)
print(json.dumps(replies))
`;

/**
 * Opens `count` connections to `port` at once (python3, non-blocking connects),
 * sends each `request` (`{i}` replaced by the connection's index) and returns
 * each one's reply (`line`: up to a newline or the close; `first`: its first
 * bytes), `null` where none came within 60 s.
 */
export async function burstReplies(
  port: number,
  count: number,
  request: Uint8Array | null,
  until: "line" | "first",
): Promise<(string | null)[]> {
  const hex = request ? [...request].map((b) => b.toString(16).padStart(2, "0")).join("") : "";
  const out = await new Deno.Command("python3", {
    args: ["-c", BURST_CLIENTS_PY, String(port), String(count), until, hex],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text ? JSON.parse(text) : [];
}

/**
 * Opens `count` connections at once (python3, non-blocking connects), sends each
 * a good first request and returns how many got a reply.
 */
export async function burstClients(kind: ServerKind, port: number, count: number): Promise<number> {
  const replies = await burstReplies(port, count, firstExchange(kind).send, "first");
  return replies.filter((reply) => reply !== null).length;
}

/**
 * Connects as a new client, makes the server's first exchange and returns the
 * milliseconds from the connect call to the reply. Throws after `timeoutMs`.
 */
export async function freshClient(
  kind: ServerKind,
  port: number,
  timeoutMs = 10_000,
  hostname = "127.0.0.1",
): Promise<number> {
  const started = performance.now();
  const { send, expect } = firstExchange(kind);
  let conn: Deno.TcpConn | null = null;
  const timer = setTimeout(() => {
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
  }, timeoutMs);
  try {
    conn = await Promise.race([
      Deno.connect({ hostname, port }),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no connection in ${timeoutMs} ms`)), timeoutMs)
      ),
    ]);
    await firstReply(conn, send, expect);
    return performance.now() - started;
  } catch (error) {
    if (performance.now() - started >= timeoutMs) {
      throw new Error(`no reply in ${timeoutMs} ms`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer.
    }
  }
}

/** Sends `send` (if any) and reads until the reply contains `expect` (at most 64 KiB). */
async function firstReply(conn: Deno.Conn, send: Uint8Array | null, expect: string): Promise<void> {
  if (send) await conn.write(send);
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes(expect)) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`closed before the reply (got ${JSON.stringify(text)})`);
    text += new TextDecoder().decode(buffer.subarray(0, n));
    if (text.length > 65_536) throw new Error("reply too long");
  }
}

/**
 * Connects, makes the first exchange and returns the open connection (a client
 * the server is serving), or throws after `timeoutMs`.
 */
export async function servedConnection(
  kind: ServerKind,
  port: number,
  timeoutMs = 10_000,
  hostname = "127.0.0.1",
): Promise<Deno.TcpConn> {
  const { send, expect } = firstExchange(kind);
  const conn = await Deno.connect({ hostname, port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await firstReply(conn, send, expect);
    return conn;
  } catch (error) {
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Everything a connection receives until the server closes it (or `timeoutMs`). */
export async function readUntilClosed(conn: Deno.Conn, timeoutMs = 10_000): Promise<string> {
  const timer = setTimeout(() => conn.close(), timeoutMs);
  const buffer = new Uint8Array(4096);
  let text = "";
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return text;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } catch (error) {
    if (error instanceof Deno.errors.BadResource) {
      throw new Error(`still open after ${timeoutMs} ms`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}

/**
 * Reset clients in python3 (raw socket options): \`PORT COUNT [RATE_PER_S]\`.
 * Without a rate, completes COUNT handshakes, then resets them all at once (the
 * ones not yet accepted are reset in the listen queue); with one, spreads
 * connect-then-reset pairs at RATE_PER_S. Prints how many were reset. Bounded: 60 s.
 */
const RESET_CLIENTS_PY = `
import socket, struct, sys, time

port, count = int(sys.argv[1]), int(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
linger = struct.pack("ii", 1, 0)
done = 0
started = time.monotonic()
deadline = started + 60


def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        return s
    except OSError:
        s.close()
        return None


if rate > 0:
    for i in range(count):
        if time.monotonic() > deadline:
            break
        wait = started + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        s = connect()
        if s is not None:
            s.close()
            done += 1
else:
    # All handshakes first, then all resets: the ones the server has not yet
    # accepted are reset while they wait in its listen queue.
    sockets = []
    for i in range(count):
        if time.monotonic() > deadline:
            break
        s = connect()
        if s is not None:
            sockets.append(s)
    for s in sockets:
        s.close()
    done = len(sockets)
print(done)
`;

/**
 * Opens `count` connections to `port` and resets each right after its handshake
 * (`SO_LINGER {1, 0}`, then close), as fast as possible or at `ratePerS`. Runs
 * python3 (raw socket options); returns how many were reset.
 */
export async function resetConnections(
  port: number,
  count: number,
  ratePerS = 0,
  signal?: AbortSignal,
): Promise<number> {
  const child = new Deno.Command("python3", {
    args: ["-c", RESET_CLIENTS_PY, String(port), String(count), String(ratePerS)],
    stdout: "piped",
    stderr: "inherit",
    signal,
  }).spawn();
  const out = await child.output();
  return Number(new TextDecoder().decode(out.stdout).trim()) || 0;
}

/** True when python3 runs (the reset clients need it). */
export async function havePython(): Promise<boolean> {
  try {
    return (await new Deno.Command("python3", { args: ["-c", "pass"] }).output()).success;
  } catch {
    return false;
  }
}

/** RSS and descriptors of a process tree. */
export interface TreeStats {
  /** Processes counted (the server and its descendants). */
  processes: number;
  /** Resident memory, bytes, summed over the tree. */
  rssBytes: number;
  /** Open descriptors, summed over the tree. */
  fds: number;
}

/** `pid` and every descendant process (from /proc). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${out[i]}/task`)].map((entry) => entry.name);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const text = Deno.readTextFileSync(`/proc/${out[i]}/task/${task}/children`).trim();
        if (text) out.push(...text.split(/\s+/).map(Number));
      } catch {
        // The thread ended.
      }
    }
  }
  return out;
}

/** RSS (from /proc/PID/status) and open descriptors of `pid` and its descendants. */
export function treeStats(pid: number): TreeStats {
  let rssBytes = 0;
  let fds = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    try {
      const status = Deno.readTextFileSync(`/proc/${p}/status`);
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const count = [...Deno.readDirSync(`/proc/${p}/fd`)].length;
      rssBytes += kb * 1024;
      fds += count;
      processes++;
    } catch {
      // The process ended.
    }
  }
  return { processes, rssBytes, fds };
}

/** `TcpExt: ListenOverflows` of this network namespace (/proc/net/netstat). */
export function listenOverflows(): number {
  const text = Deno.readTextFileSync("/proc/net/netstat");
  const lines = text.split("\n").filter((line) => line.startsWith("TcpExt:"));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf("ListenOverflows")]);
}

/** Arguments of each server's `serve` for a mode, listening on `port` of 127.0.0.1. */
export function serveArgs(kind: ServerKind, mode: string, port: number, extra: string[] = []) {
  const common = ["serve", "--port", String(port), "--mode", mode];
  switch (kind) {
    case "taskserver":
      return [...common, "--host", "127.0.0.1", ...extra];
    case "transfer":
      return [...common, "--host", "127.0.0.1", ...extra];
    default:
      return [...common, "--address", "127.0.0.1", ...extra];
  }
}

/** The entry of each server's command line. */
export function serverMain(kind: ServerKind): string {
  return new URL(`../${kind}/main.ts`, import.meta.url).pathname;
}

/** A server started as a child process by {@linkcode startServerProcess}. */
export interface ServerProcess {
  child: Deno.ChildProcess;
  port: number;
  /** Everything the server printed on stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; returns the exit code. */
  stop(graceMs?: number): Promise<number>;
}

/**
 * Starts `kind serve` as a child process (from source) on port 0 or `port`, and
 * resolves with the port it announced. The child's storage (transfer) is `root`.
 */
export async function startServerProcess(
  kind: ServerKind,
  mode: string,
  options: { port?: number; extra?: string[]; root?: string; timeoutMs?: number } = {},
): Promise<ServerProcess> {
  const extra = [...(options.extra ?? [])];
  if (kind === "transfer") extra.push("--root", options.root ?? Deno.makeTempDirSync());
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-net",
      serverMain(kind),
      ...serveArgs(kind, mode, options.port ?? 0, extra),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let announced: (port: number) => void;
  const port = new Promise<number>((resolve) => announced = resolve);
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (text.length > 1 << 20) text = text.slice(-(1 << 19));
      const found = /(?:listening on|ready on|receive on) 127\.0\.0\.1:(\d+)/.exec(text);
      if (found) announced(Number(found[1]));
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {});
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const chosen = await Promise.race([
    port,
    child.status.then((s) => {
      throw new Error(`${kind} serve exited with ${s.code} before listening:\n${text}`);
    }),
    new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error(`${kind} serve did not start:\n${text}`)),
        timeoutMs,
      )
    ),
  ]).finally(() => clearTimeout(timer));
  return {
    child,
    port: chosen,
    output: () => text,
    async stop(graceMs = 10_000) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      let killTimer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) =>
        killTimer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Exited meanwhile.
          }
          resolve();
        }, graceMs)
      );
      const status = await Promise.race([child.status, killed.then(() => child.status)]);
      clearTimeout(killTimer);
      await pumps;
      return status.code;
    },
  };
}
