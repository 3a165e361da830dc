/**
 * A line server for the load generator's tests: answers `choice|payload` as our
 * server does (ops.ts), optionally answers one choice with `Error: refused`, and
 * optionally never answers, or freezes: every answer due in a window (from `afterMs` after the
 * first request, for `forMs`) waits until the window ends, like a server in a
 * garbage-collection pause.
 */
import { processRequest } from "../taskserver/ops.ts";
import type { Mode } from "../shared/mode.ts";
import { type Captured, runTool } from "./_command.ts";

export interface TestServer {
  port: number;
  /** Answers written so far. */
  answered(): number;
  close(): Promise<void>;
}

export function startTestServer(
  options: {
    errorChoice?: string;
    freeze?: { afterMs: number; forMs: number };
    /** Read requests and never answer. */
    silent?: boolean;
  } = {},
): Promise<TestServer> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let answered = 0;
  let firstAt = 0;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const handle = async (conn: Deno.Conn) => {
    conns.add(conn);
    const buffer = new Uint8Array(65536);
    let pending = "";
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        const now = performance.now();
        if (firstAt === 0) firstAt = now;
        pending += decoder.decode(buffer.subarray(0, n));
        const lines = pending.split("\n");
        pending = lines.pop()!;
        if (lines.length === 0 || options.silent) continue;
        if (options.freeze) {
          const start = firstAt + options.freeze.afterMs;
          const end = start + options.freeze.forMs;
          if (now >= start && now < end) await new Promise((r) => setTimeout(r, end - now));
        }
        const replies = lines.map((line) =>
          options.errorChoice !== undefined && line.startsWith(`${options.errorChoice}|`)
            ? "Error: refused"
            : processRequest(line)
        );
        await conn.write(encoder.encode(replies.join("\n") + "\n"));
        answered += replies.length;
      }
    } catch {
      // The generator closed or reset the connection.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Closed.
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) void handle(conn);
    } catch {
      // Listener closed.
    }
  })();
  return Promise.resolve({
    port: (listener.addr as Deno.NetAddr).port,
    answered: () => answered,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed.
        }
      }
      await accepting;
    },
  });
}

/** Starts `taskserver ARGS...` from source as a child, stdout and stderr piped. */
export function spawnTaskserver(args: string[]): Deno.ChildProcess {
  const main = new URL("../taskserver/main.ts", import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", "--unstable-net", main, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Reads `reader` until the text read so far satisfies `done`, the stream ends or
 * `timeoutMs` passes; returns the text.
 */
export async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  done: (text: string) => boolean,
  timeoutMs: number,
  text = "",
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!done(text) && Date.now() < deadline) {
    const chunk = await reader.read();
    if (chunk.done) break;
    text += chunk.value;
  }
  return text;
}

/** Every server design the conformance tests run: each mode, and worker per client. */
export const SERVER_DESIGNS: readonly { mode: Mode; perClient?: boolean }[] = [
  { mode: "sequential" },
  { mode: "async" },
  { mode: "thread" },
  { mode: "process" },
  { mode: "thread", perClient: true },
  { mode: "process", perClient: true },
];

/** `taskserver load TARGET FLAGS...` (flags split at spaces, then `more` as given). */
export function loadCommand(target: string, flags: string, ...more: string[]): Promise<Captured> {
  return runTool("taskserver", ["load", target, ...flags.split(" ").filter((f) => f), ...more]);
}
