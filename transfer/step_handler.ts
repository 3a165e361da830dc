/**
 * One STEP connection on the server side: reads packets into a reusable buffer
 * (growing with bytes received, within the isolate's budget), hands each request
 * to requests.ts and writes the reply, with one deadline timer for every read and
 * write of a real socket. A bad frame closes this connection, never the server.
 *
 * @module
 */
import { parseStepJson } from "../shared/codec.ts";
import { errorMessage, FrameTooLargeError, ProtocolError, TimeoutError } from "../shared/errors.ts";
import type { ConnectionContext, Duplex } from "../shared/server.ts";
import { MAX_BLOCK_SIZE, MAX_REQUEST_JSON, response, type StepJson } from "./protocol.ts";
import { DEFAULT_PLAN_LIMITS, Storage, UploadSession } from "./storage.ts";
import { type DirectWriter, MIN_DIRECT_BLOCK } from "./direct_writer.ts";
import {
  type BodyTarget,
  BusyError,
  ByteBudget,
  Deadline,
  PacketReceiver,
  Scratch,
  writeWithTimeout,
} from "./receiver.ts";
import { handleRequest, type ServerSettings } from "./requests.ts";

/** One log line, sent by a handler through `emit`. */
export interface ServerLogEvent {
  level: "info" | "error";
  line: string;
}

/** Storages per root, one per isolate (upload state is shared by its connections). */
export const storages = new Map<string, Storage>();

/** Buffer budgets per storage root, one per isolate. */
export const budgets = new Map<string, ByteBudget>();

/** The storage of a root, one per isolate (upload state is shared by its connections). */
export function storageFor(
  settings: Pick<ServerSettings, "root"> & Partial<ServerSettings>,
): Storage {
  let storage = storages.get(settings.root);
  if (!storage) {
    storage = new Storage(settings.root, {
      maxPlansPerUser: settings.maxPlansPerUser ?? DEFAULT_PLAN_LIMITS.maxPlansPerUser,
      maxPlans: settings.maxPlans ?? DEFAULT_PLAN_LIMITS.maxPlans,
      planTtlSeconds: settings.planTtl ?? DEFAULT_PLAN_LIMITS.planTtlSeconds,
    }, settings.entry);
    storages.set(settings.root, storage);
  }
  return storage;
}

/** The buffer budget of a root's server in this isolate. */
export function budgetFor(settings: ServerSettings): ByteBudget {
  let budget = budgets.get(settings.root);
  if (!budget) {
    budget = new ByteBudget(settings.maxBuffered);
    budgets.set(settings.root, budget);
  }
  return budget;
}

const encoder = new TextEncoder();
/** Largest binary part accepted: the largest block plus a margin. */
export const MAX_REQUEST_BINARY = MAX_BLOCK_SIZE + 65536;

/**
 * Serves one STEP connection until it ends: the `transfer.step` connection
 * handler of the registry, run by shared/server.ts in every server mode.
 */
export async function stepConnection(
  conn: Duplex,
  context: ConnectionContext<ServerSettings>,
): Promise<void> {
  const settings = context.init;
  const storage = storageFor(settings);
  const budget = budgetFor(settings);
  const session = new UploadSession(storage);
  // A real socket (sequential, async and pooled modes) is read and written directly:
  // the stream wrappers cost more per block than the rest of the request.
  const socket = "read" in conn && "write" in conn ? (conn as unknown as Deno.Conn) : null;
  if (socket && "setNoDelay" in socket) (socket as Deno.TcpConn).setNoDelay(true);
  // One timer watches every read and write of a real socket (closing it on expiry).
  const deadline = socket
    ? new Deadline(() => {
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    })
    : null;
  const receiver = new PacketReceiver(socket ?? conn.readable, budget, undefined, deadline);
  const writer = socket ? null : conn.writable.getWriter();
  const peer = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
  const log = (line: string, level: "info" | "error" = "info") =>
    context.emit({ level, line: `${peer} ${line}` } satisfies ServerLogEvent);
  // Blocks read for DOWNLOAD and replies sent reuse two buffers: no allocation per block.
  const blocks = new Scratch(16 * 1024, budget);
  const packets = new Scratch(16 * 1024, budget);
  const send = async (json: StepJson, binary: Uint8Array = new Uint8Array(0)) => {
    const jsonBytes = encoder.encode(JSON.stringify(json));
    const packet = packets.take(8 + jsonBytes.length + binary.length);
    const view = new DataView(packet.buffer, packet.byteOffset, 8);
    view.setUint32(0, jsonBytes.length);
    view.setUint32(4, binary.length);
    packet.set(jsonBytes, 8);
    packet.set(binary, 8 + jsonBytes.length);
    const timeout = settings.requestTimeoutMs;
    const target = socket ?? {
      write: async (p: Uint8Array) => {
        await writer!.write(p.slice());
        return p.length;
      },
    };
    await writeWithTimeout(
      target,
      packet,
      timeout,
      "the client to read a reply",
      deadline ?? undefined,
    );
  };
  const limits = { maxJson: MAX_REQUEST_JSON, maxBinary: MAX_REQUEST_BINARY };
  // A large block is most likely for the upload this connection wrote last: with a
  // direct writer, its body is read from the socket straight into a buffer of the
  // writer's ring (no copy into the ring afterwards). A buffer the request did not
  // take (another key, an error) goes back once the request is handled.
  let lent: { writer: DirectWriter; buffer: Uint8Array } | null = null;
  const giveBack = () => {
    if (lent === null) return;
    lent.writer.giveBack(lent.buffer);
    lent = null;
  };
  const lend = async (writer: DirectWriter, length: number) => {
    await writer.room();
    const buffer = writer.lend(length);
    if (buffer !== null) lent = { writer, buffer };
    return buffer;
  };
  // Synchronous when there is nothing to lend (the lockstep's small blocks): no extra await.
  const bodyTarget: BodyTarget | undefined = socket
    ? (length) => {
      const writer = session.lastDirect;
      if (writer === null || length < MIN_DIRECT_BLOCK || length > writer.blockSize) return null;
      return lend(writer, length);
    }
    : undefined;
  const requestContext = {
    storage,
    settings,
    session,
    scratch: blocks,
    tokens: new Map<string, string>(),
  };
  try {
    for (;;) {
      if (context.signal.aborted) break;
      let packet: { json: Uint8Array; binary: Uint8Array } | null;
      giveBack();
      try {
        packet = await receiver.next(
          limits,
          settings.idleTimeoutMs,
          settings.requestTimeoutMs,
          bodyTarget,
        );
      } catch (error) {
        if (!(error instanceof FrameTooLargeError) && !(error instanceof BusyError)) throw error;
        // The stream cannot be resynchronised after a length we refuse to read.
        const message = errorMessage(error);
        log(`bad header: ${message}; connection closed`, "error");
        const status = error instanceof BusyError ? 503 : 400;
        await send(response("ERROR", status, "ERROR", `${message}; closing the connection.`))
          .catch(() => {});
        break;
      }
      if (packet === null) break;
      let json: StepJson;
      try {
        json = parseStepJson(packet.json);
      } catch (error) {
        // The frame was whole, so the stream is still in step: answer and go on.
        log(`bad request: ${errorMessage(error)}`, "error");
        await send(response("ERROR", 400, "ERROR", `${errorMessage(error)}.`));
        continue;
      }
      let outcome;
      try {
        outcome = await handleRequest(requestContext, json, packet.binary);
      } catch (error) {
        if (!(error instanceof BusyError)) throw error;
        outcome = { reply: { json: response("ERROR", 503, "ERROR", `${errorMessage(error)}.`) } };
      } finally {
        giveBack();
      }
      if (outcome.log) {
        const status = outcome.reply?.json.status;
        log(outcome.log, typeof status === "number" && status >= 400 ? "error" : "info");
      }
      if (outcome.reply) await send(outcome.reply.json, outcome.reply.binary);
      if (outcome.close) break;
    }
  } catch (error) {
    if (
      error instanceof TimeoutError || error instanceof ProtocolError ||
      error instanceof FrameTooLargeError || error instanceof BusyError
    ) {
      log(`${errorMessage(error)}; connection closed`, "error");
    } else if (!context.signal.aborted) {
      log(`connection ended: ${errorMessage(error)}`, "error");
    }
  } finally {
    giveBack();
    deadline?.dispose();
    session.releaseAll();
    receiver.dispose();
    blocks.dispose();
    packets.dispose();
    await writer?.close().catch(() => {});
  }
}
