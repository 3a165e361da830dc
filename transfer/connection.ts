/**
 * One connection to a STEP server, as `transfer`'s client speaks it: lockstep
 * calls, pipelined sends, LOGIN with the server's capabilities, exact frames from
 * this project's server and tolerant reads from the course's, one deadline timer
 * for every read and write.
 *
 * @module
 */
import { readStepReply } from "./reply_reader.ts";
import { connectError } from "../shared/errors.ts";
import { BufferedReader } from "../shared/reader.ts";
import { parseStepJson } from "../shared/codec.ts";
import {
  encodePacket,
  MAX_BLOCK_SIZE,
  MAX_REPLY_JSON,
  md5Hex,
  type Reply,
  request,
  type StepJson,
} from "./protocol.ts";
import { Deadline, PacketReceiver, writeWithTimeout } from "./receiver.ts";

/** A reply with a status other than the one expected. */
export class StepStatusError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number,
    readonly statusMsg: string,
  ) {
    super(`${operation} failed: ${status} ${statusMsg}`);
    this.name = "StepStatusError";
  }
}

/** The client's hash and the server's differ. */
export class Md5MismatchError extends Error {
  constructor(readonly local: string, readonly remote: string, what: string) {
    super(`MD5 mismatch for ${what}: local ${local}, server ${remote}`);
    this.name = "Md5MismatchError";
  }
}

/** Where to connect, and as whom. */
export interface ConnectOptions {
  host: string;
  port: number;
  /** The user id (username); its MD5 is the password. */
  id: string;
  /** Milliseconds to wait for each reply (and for the connect). */
  timeoutMs?: number;
  /** Connect with TLS (`--tls`), trusting these PEM certificates (`--ca`) or the system's. */
  tls?: { caCerts?: string[] };
}

/** One connection to a STEP server. */
export class StepConnection {
  readonly #conn: Deno.Conn;
  readonly #reader: BufferedReader;
  readonly #timeoutMs: number;
  /** What the server announced in its LOGIN reply (empty for the course's servers). */
  capabilities: string[] = [];
  #frames: PacketReceiver | null = null;

  /** One timer for every read and write of the exact-frame path (see receiver.ts). */
  readonly #deadline: Deadline;

  private constructor(conn: Deno.Conn, timeoutMs: number) {
    this.#conn = conn;
    this.#reader = new BufferedReader(conn, 256 * 1024);
    this.#timeoutMs = timeoutMs;
    this.#deadline = new Deadline(() => this.close());
  }

  /** Connects, with a timeout; errors read `Cannot connect to host:port: reason`. */
  static async open(
    host: string,
    port: number,
    timeoutMs = 30_000,
    tls?: { caCerts?: string[] },
  ): Promise<StepConnection> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const connecting = tls
        ? Deno.connectTls({ hostname: host, port, caCerts: tls.caCerts }).then(async (conn) => {
          await conn.handshake();
          return conn as Deno.Conn;
        })
        : Deno.connect({ hostname: host, port });
      const conn = await Promise.race([
        connecting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Deno.errors.TimedOut(`connect timed out after ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
      return new StepConnection(conn, timeoutMs);
    } catch (error) {
      throw connectError(host, port, error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one packet without waiting for its reply (pipelining; our server only). */
  async send(json: StepJson, binary?: Uint8Array): Promise<void> {
    const packet = encodePacket(json, binary);
    await this.sendFramed(packet, `sending ${json.operation}`);
  }

  /** Sends bytes already framed (a reused packet buffer; free again once this resolves). */
  async sendFramed(packet: Uint8Array, what: string): Promise<void> {
    await writeWithTimeout(this.#conn, packet, this.#timeoutMs, what, this.#deadline);
  }

  /**
   * From now on, reads replies as exact frames into one reusable buffer: no copy
   * per block. Only for this project's server, which counts JSON lengths in bytes
   * (the course's counts characters); a reply's binary part is then valid until
   * the next `receive`.
   */
  useExactFrames(): void {
    if (this.#frames === null && this.#reader.buffered === 0) {
      this.#frames = new PacketReceiver(this.#conn, undefined, undefined, this.#deadline);
    }
  }

  /** Reads the next reply; a timeout or a closed connection is an error. */
  async receive(what = "a reply"): Promise<Reply> {
    if (this.#frames) {
      const limits = { maxJson: MAX_REPLY_JSON, maxBinary: MAX_BLOCK_SIZE + 65536 };
      const packet = await this.#frames.next(limits, this.#timeoutMs, this.#timeoutMs);
      if (packet === null) {
        throw new Error(`The server closed the connection while we waited for ${what}`);
      }
      return { json: parseStepJson(packet.json), binary: packet.binary };
    }
    const reply = await readStepReply(this.#reader, { timeout: this.#timeoutMs, what });
    if (reply === null) {
      throw new Error(`The server closed the connection while we waited for ${what}`);
    }
    return reply;
  }

  /** Sends a request and waits for its reply (lockstep). */
  async call(json: StepJson, binary?: Uint8Array): Promise<Reply> {
    await this.send(json, binary);
    return await this.receive(`the reply to ${json.type} ${json.operation}`);
  }

  /** Like {@linkcode call}, but a status other than 200 throws {@linkcode StepStatusError}. */
  async expect200(json: StepJson, binary?: Uint8Array): Promise<Reply> {
    const reply = await this.call(json, binary);
    if (reply.json.status !== 200) {
      throw new StepStatusError(
        `${json.type} ${json.operation}`,
        Number(reply.json.status),
        String(reply.json.status_msg ?? ""),
      );
    }
    return reply;
  }

  /** Logs in and returns the token. */
  async login(id: string): Promise<string> {
    const reply = await this.expect200(
      request("AUTH", "LOGIN", { username: id, password: md5Hex(id) }),
    );
    if (typeof reply.json.token !== "string") throw new Error("LOGIN reply carries no token");
    const announced = reply.json.capabilities;
    this.capabilities = Array.isArray(announced)
      ? announced.filter((c): c is string => typeof c === "string")
      : [];
    // Only this project's server announces capabilities, and it counts lengths in
    // bytes: its replies can be read as exact frames, in any plan.
    if (this.capabilities.length > 0) this.useExactFrames();
    return reply.json.token;
  }

  /** Says BYE (no reply is expected: the course sends none) and closes. */
  async bye(token: string): Promise<void> {
    try {
      await this.send(request("AUTH", "BYE", { token }));
    } catch {
      // The server may already be gone; we are leaving anyway.
    }
    this.close();
  }

  close(): void {
    this.#deadline.dispose();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Logs in, makes one request, and returns the reply's JSON (any status). */
export async function simpleRequest(
  options: ConnectOptions,
  type: "FILE" | "DATA",
  operation: string,
  fields: StepJson,
): Promise<{ token: string; reply: StepJson }> {
  const connection = await StepConnection.open(
    options.host,
    options.port,
    options.timeoutMs,
    options.tls,
  );
  let token = "";
  try {
    token = await connection.login(options.id);
    const reply = await connection.call(request(type, operation, { ...fields, token }));
    return { token, reply: reply.json };
  } finally {
    await connection.bye(token);
  }
}
