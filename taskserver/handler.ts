/**
 * The task server's connection handler, registered as `taskserver.tasks` (see
 * `registry.ts`) so that `serve()` can run it in this isolate, in pooled workers
 * and children, or in a worker or child per connection. It reads requests with
 * the framing rule of `protocol.ts`, waits `delayMs` before each answer, and
 * closes idle connections.
 *
 * @module
 */
import type { ConnectionHandler, Duplex } from "../shared/server.ts";
import { LineDecoder, LineOverflow } from "../shared/codec.ts";
import { errorMessage } from "../shared/errors.ts";
import { onAbort } from "../shared/abort.ts";
import { BufferPool } from "./buffer_pool.ts";
import { answerLine, DEFAULT_INIT, type TaskServerInit } from "./protocol.ts";

// Idle connections are found by one sweep per isolate rather than a timer per
// read, which keeps the request path free of timer churn.
interface Watched {
  last: number;
  timeoutMs: number;
  expire(): void;
}
const watched = new Set<Watched>();
let sweeper: ReturnType<typeof setInterval> | undefined;

function watch(entry: Watched): void {
  watched.add(entry);
  if (sweeper !== undefined) return;
  sweeper = setInterval(() => {
    const now = performance.now();
    for (const w of watched) {
      if (now - w.last >= w.timeoutMs) {
        watched.delete(w);
        w.expire();
      }
    }
    if (watched.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }, 250);
  Deno.unrefTimer(sweeper);
}

const PAUSED = Symbol("paused");

// Every connection of an isolate shares one abort signal, so abort callbacks go
// through shared/abort.ts (a listener per connection would cost O(n²)).
/** Sleeps `ms`; resolves early (returning false) when the server closes. */
function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      forget();
      resolve(true);
    }, ms);
    const forget = onAbort(signal, () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

interface ByteIo {
  /** Next chunk, or null at the end of the client's data. */
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  /** Ends a pending read (idle timeout, server closing). */
  cancel(): void;
  /** Ends the connection once everything is written (the client has sent everything). */
  close(): Promise<void>;
  /** Frees what the connection held; called last, with no read pending. */
  dispose(): void;
}

// 10,000 idle clients hold 40 MB of read buffers, carved from shared slabs.
const readBuffers = new BufferPool(4096);

// A `Deno.Conn` is read and written directly (no stream layer on the request
// path, which roughly doubles requests per second); a relayed connection in a
// worker or child only has its streams.
function byteIo(conn: Duplex): ByteIo {
  const direct = conn as unknown as Partial<Deno.TcpConn>;
  if (typeof direct.read === "function" && typeof direct.write === "function") {
    return directIo(conn as unknown as Deno.TcpConn);
  }
  const reader = conn.readable.getReader();
  const writer = conn.writable.getWriter();
  return {
    async read() {
      const result = await reader.read();
      return result.done ? null : result.value;
    },
    write: (bytes) => writer.write(bytes),
    cancel: () => void reader.cancel().catch(() => {}),
    close: () => writer.close().catch(() => {}),
    dispose() {},
  };
}

function directIo(tcp: Deno.TcpConn): ByteIo {
  let buffer: Uint8Array | null = readBuffers.acquire();
  let reading = false;
  let closed = false;
  const closeSocket = () => {
    if (closed) return;
    closed = true;
    try {
      tcp.close();
    } catch {
      // Already closed.
    }
  };
  return {
    async read() {
      if (closed || buffer === null) return null;
      reading = true;
      try {
        const n = await tcp.read(buffer);
        return n === null ? null : buffer.subarray(0, n);
      } catch (error) {
        if (closed) return null;
        throw error;
      } finally {
        reading = false;
      }
    },
    async write(bytes) {
      let done = 0;
      while (done < bytes.length) done += await tcp.write(bytes.subarray(done));
    },
    cancel: closeSocket,
    // Every answer is written and the client has sent everything: the server's
    // close sends FIN after the data (a separate shutdown call cost as much CPU
    // as the accept in the 10,000-client burst).
    close: () => Promise.resolve(),
    dispose() {
      // A buffer is reused only when no read into it is pending; otherwise the
      // socket is closed and the buffer left to the collector.
      if (reading) closeSocket();
      else if (buffer !== null) readBuffers.release(buffer);
      buffer = null;
    },
  };
}
const encoder = new TextEncoder();

/** The task server's connection handler (registered in `registry.ts`). */
export const taskConnection: ConnectionHandler<TaskServerInit> = async (conn, context) => {
  const init = { ...DEFAULT_INIT, ...context.init };
  const emit = init.verbose ? context.emit : undefined;
  // Only the verbose log names the client.
  const remote = emit ? `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}` : "";
  emit?.({ type: "connect", remote, connection: context.connection, at: Date.now() });
  const io = byteIo(conn);
  const decoder = new LineDecoder(init.maxLine);
  let requests = 0;
  let reason = "client closed";
  const idle: Watched = {
    last: performance.now(),
    timeoutMs: init.idleTimeoutMs,
    expire: () => {
      reason = `idle for ${init.idleTimeoutMs} ms`;
      io.cancel();
    },
  };
  if (init.idleTimeoutMs > 0) watch(idle);
  const forgetAbort = onAbort(context.signal, () => {
    reason = "server closing";
    io.cancel();
  });

  const answer = async (lines: (Uint8Array | LineOverflow)[]): Promise<void> => {
    let out = "";
    for (const line of lines) {
      if (init.delayMs > 0 && !(await delay(init.delayMs, context.signal))) return;
      const reply = answerLine(line, init);
      requests++;
      if (emit) {
        const request = line instanceof LineOverflow
          ? `<${line.length} bytes>`
          : new TextDecoder().decode(line.subarray(0, 200));
        emit({ type: "request", remote, request, reply: reply.slice(0, 200) });
      }
      out += reply + "\n";
      if (init.delayMs > 0) {
        await io.write(encoder.encode(out));
        out = "";
      }
    }
    if (out !== "") await io.write(encoder.encode(out));
  };

  try {
    for (;;) {
      const read = io.read();
      let result: Uint8Array | null | typeof PAUSED;
      if (decoder.pending > 0 && init.pauseMs > 0) {
        // A partial request: the client may be waiting for the answer (no newline).
        let timer: ReturnType<typeof setTimeout> | undefined;
        result = await Promise.race([
          read,
          new Promise<typeof PAUSED>((resolve) => {
            timer = setTimeout(() => resolve(PAUSED), init.pauseMs);
          }),
        ]);
        clearTimeout(timer);
        if (result === PAUSED) {
          const line = decoder.flush();
          if (line !== undefined) await answer([line]);
          result = await read;
        }
      } else {
        result = await read;
      }
      if (result === null) break;
      idle.last = performance.now();
      const lines = decoder.push(result);
      if (lines.length > 0) await answer(lines);
    }
    const rest = decoder.flush();
    if (rest !== undefined && !context.signal.aborted) await answer([rest]);
    await io.close();
  } catch (error) {
    // A client that vanished mid-request ends only its own connection.
    reason = context.signal.aborted ? "server closing" : errorMessage(error);
  } finally {
    io.dispose();
    watched.delete(idle);
    forgetAbort();
    emit?.({ type: "disconnect", remote, requests, reason, at: Date.now() });
  }
};
