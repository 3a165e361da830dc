/**
 * The inter-arrival-time server's connection handler: greets a connection,
 * timestamps every message where its bytes arrive (monotonic clock,
 * microseconds) and reports it to the serving isolate's collector. Runs in
 * every mode (a worker or child loads it through the registry). Never prints.
 *
 * @module
 */
import type { ConnectionContext, Duplex } from "../shared/server.ts";
import { decodeText, encodeLine } from "../shared/codec.ts";
import { roundMs } from "../shared/clock.ts";
import {
  formatAddress,
  GREETING,
  LineScanner,
  MESSAGE_MAGIC,
  MessageSplitter,
  parseEvent,
} from "./protocol.ts";
import type { CloseReason, ReceiverEvent } from "./collector.ts";

/** What every connection handler is told (JSON, crosses to workers and children). */
export interface ReceiverInit {
  verbose: boolean;
  maxLine: number;
  idleTimeoutMs: number;
}

type DataEvent = Extract<ReceiverEvent, { k: "data" }>;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();
const BATCH = 256;
const FLUSH_MS = 50;

/**
 * Serves one connection: greets it, then cuts its bytes into messages (the
 * study's lines, or binary messages when the first byte is the magic one) and
 * reports each message's arrival time, length and the flow, sequence number and
 * send time it carries.
 */
export async function receiveConnection(
  conn: Duplex,
  context: ConnectionContext<ReceiverInit>,
): Promise<void> {
  const { verbose, maxLine, idleTimeoutMs } = context.init;
  const c = context.connection;
  const remote = formatAddress(conn.remoteAddr);
  context.emit({ k: "open", c, at: context.acceptedAt, remote, where: context.where });
  let lines: LineScanner | null = null;
  let splitter: MessageSplitter | null = null;
  let batch = newBatch(c, verbose, false);
  const flush = () => {
    if (batch.at.length === 0) return;
    context.emit(batch);
    batch = newBatch(c, verbose, batch.binary);
  };
  const push = (at: number, length: number, flow: number, seq: number, sent: number) => {
    batch.at.push(at);
    batch.len.push(length);
    batch.flow.push(flow);
    batch.seq.push(seq);
    batch.sent.push(sent);
    if (batch.at.length >= BATCH) flush();
  };
  const recordLine = (arrived: number, line: Uint8Array) => {
    let text: string | null = line.length === 0 ? "" : null;
    if (text === null) {
      try {
        text = strictUtf8.decode(line);
      } catch {
        batch.bad++;
      }
    }
    // The study's lines carry worker, event and send time: read them when present.
    const event = text !== null && text.startsWith("Worker ") ? parseEvent(text) : null;
    // Verbose text replaces invalid sequences with U+FFFD.
    if (batch.text) batch.text.push(text ?? decodeText(line));
    push(
      epochMs(arrived),
      line.length,
      event ? event.worker : -1,
      event ? event.event : -1,
      event ? event.timestamp : -1,
    );
  };
  // A `Deno.Conn` is read directly: its ReadableStream adds a hop per read, and
  // messages that arrive during that hop would be merged into one reception.
  const reader = byteReader(conn);
  let reason: CloseReason = "eof";
  let lastActivity = performance.now();
  // One timer per connection checks idleness and flushes batches: cheaper than a
  // timer per read at 100,000 messages per second.
  const timer = setInterval(() => {
    flush();
    if (performance.now() - lastActivity > idleTimeoutMs) {
      reason = "idle-timeout";
      reader.cancel().catch(() => {});
    }
  }, Math.min(FLUSH_MS, Math.max(5, idleTimeoutMs / 4)));
  const onAbort = () => {
    reason = "server-closing";
    reader.cancel().catch(() => {});
  };
  context.signal.addEventListener("abort", onAbort, { once: true });
  let unterminated = false;
  try {
    const writer = conn.writable.getWriter();
    await writer.write(encodeLine(GREETING)).catch(() => {});
    writer.releaseLock();
    for (;;) {
      let chunk: { done: boolean; value?: Uint8Array };
      try {
        chunk = await reader.read();
      } catch {
        if (reason === "eof") reason = "reset";
        break;
      }
      if (chunk.done) break;
      // Timestamp where the bytes arrive: every message this read completes shares it.
      const arrived = performance.now();
      lastActivity = arrived;
      const bytes = chunk.value!;
      if (lines === null && splitter === null) {
        if (bytes[0] === MESSAGE_MAGIC) {
          splitter = new MessageSplitter(maxLine);
          batch.binary = true;
        } else lines = new LineScanner(maxLine);
      }
      let refusal = "";
      if (splitter) {
        const at = epochMs(arrived);
        for (const m of splitter.push(bytes)) {
          if ("error" in m) {
            reason = "bad-message";
            refusal = `Error: ${m.detail}; closing the connection`;
            break;
          }
          push(at, m.length, m.flow, m.sequence, m.sentUs / 1000);
          if (batch.text) {
            batch.text.push(`flow ${m.flow} sequence ${m.sequence}, ${m.length} bytes`);
          }
        }
      } else {
        // The scanner stops at a line over the cap, also one still unterminated,
        // instead of reading megabytes more.
        if (!lines!.push(bytes, (line) => recordLine(arrived, line))) {
          reason = "line-too-long";
          refusal = `Error: message longer than ${maxLine} bytes; closing the connection`;
        }
      }
      if (refusal) {
        await refuse(conn, reader, refusal);
        break;
      }
    }
    if (reason !== "line-too-long" && reason !== "bad-message") {
      if (lines) {
        // A last line without its newline still counts as a message (received when
        // its last byte arrived); one still over the cap does not.
        const tail = lines.flush();
        if (tail && tail.length > maxLine) reason = "line-too-long";
        else if (tail) {
          unterminated = true;
          recordLine(lastActivity, tail);
        }
      } else if (splitter && splitter.pending > 0) unterminated = true;
    }
  } finally {
    clearInterval(timer);
    context.signal.removeEventListener("abort", onAbort);
    flush();
    context.emit({
      k: "close",
      c,
      at: epochMs(performance.now()),
      reason,
      unterminated,
    });
  }
}

/** Epoch milliseconds (microsecond precision) of a `performance.now()` reading. */
function epochMs(monotonic: number): number {
  return roundMs(performance.timeOrigin + monotonic);
}

// After a bad message the server answers, shuts its side, and discards what the
// client still sends (up to DRAIN_BYTES or DRAIN_MS): closing with unread data
// would reset the connection and the client could lose the answer.
const DRAIN_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 2000;

async function refuse(
  conn: Duplex,
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> },
  message: string,
): Promise<void> {
  const writer = conn.writable.getWriter();
  await writer.write(encoder.encode(message + "\n")).catch(() => {});
  const direct = conn as Partial<Deno.Conn>;
  if (typeof direct.closeWrite === "function") {
    // Closing a Deno.Conn's writable closes the whole socket; shut only our side.
    writer.releaseLock();
    await direct.closeWrite().catch(() => {});
  } else await writer.close().catch(() => {});
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), DRAIN_MS);
  try {
    let drained = 0;
    while (drained < DRAIN_BYTES) {
      const chunk = await reader.read();
      if (chunk.done) break;
      drained += chunk.value!.length;
    }
  } catch {
    // Reset or cancelled: either way the connection is done.
  } finally {
    clearTimeout(timer);
  }
}

function byteReader(
  conn: Duplex,
): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } {
  const direct = conn as Partial<Deno.Conn>;
  if (typeof direct.read === "function") {
    const buffer = new Uint8Array(64 * 1024);
    let cancelled = false;
    return {
      async read() {
        if (cancelled) return { done: true };
        const n = await direct.read!(buffer);
        if (n === null || cancelled) return { done: true };
        return { done: false, value: buffer.subarray(0, n) };
      },
      cancel() {
        cancelled = true;
        try {
          // closeWrite rejects (BadResource) when the connection is already closed:
          // left unhandled, that rejection ended the whole process.
          (conn as Deno.Conn).closeWrite?.()?.catch(() => {});
        } catch {
          // Already shut.
        }
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        return Promise.resolve();
      },
    };
  }
  const reader = conn.readable.getReader();
  return { read: () => reader.read(), cancel: () => reader.cancel() };
}

function newBatch(c: number, verbose: boolean, binary: boolean): DataEvent {
  return {
    k: "data",
    c,
    at: [],
    len: [],
    flow: [],
    seq: [],
    sent: [],
    binary,
    bad: 0,
    ...(verbose ? { text: [] } : {}),
  };
}
