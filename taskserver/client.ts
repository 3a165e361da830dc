/**
 * Clients of the task server: one request (`call`), and the study's interactive
 * menu (`client`). They speak the newline rule: `choice|payload\n` → one line.
 *
 * @module
 */
import { BufferedReader } from "../shared/reader.ts";
import { decodeText, encodeLine, LineOverflow } from "../shared/codec.ts";
import { connectError, ProtocolError } from "../shared/errors.ts";
import { type Operation, operationChoice } from "./ops.ts";

/** Longest reply a client accepts, in bytes. */
export const MAX_REPLY = 1 << 20;

/** Where the server is and how long to wait. */
export interface Target {
  host: string;
  port: number;
  /** Milliseconds to wait for the connection and for each reply. */
  timeoutMs: number;
}

/** A connected client that sends requests one at a time. */
export class TaskClient {
  readonly #conn: Deno.TcpConn;
  readonly #reader: BufferedReader;
  readonly #timeoutMs: number;

  private constructor(conn: Deno.TcpConn, timeoutMs: number) {
    this.#conn = conn;
    this.#reader = new BufferedReader(conn);
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects to the server.
   *
   * @throws `Cannot connect to HOST:PORT: <reason>`.
   */
  static async connect(target: Target): Promise<TaskClient> {
    try {
      const conn = await Deno.connect({
        hostname: target.host,
        port: target.port,
        signal: AbortSignal.timeout(target.timeoutMs),
      } as Deno.ConnectOptions);
      conn.setNoDelay(true);
      return new TaskClient(conn, target.timeoutMs);
    } catch (error) {
      const cause = error instanceof DOMException && error.name === "TimeoutError"
        ? new Deno.errors.TimedOut()
        : error;
      throw connectError(target.host, target.port, cause);
    }
  }

  /** Sends one request line and returns the reply line. */
  async request(op: Operation, payload: string): Promise<string> {
    return await this.raw(`${operationChoice(op)}|${payload}`);
  }

  /** Sends a raw request line (no newline inside) and returns the reply line. */
  async raw(line: string): Promise<string> {
    if (line.includes("\n")) throw new ProtocolError("a request cannot contain a newline");
    await this.#conn.write(encodeLine(line));
    const reply = await this.#reader.readLine(MAX_REPLY, { timeout: this.#timeoutMs });
    if (reply === null) throw new ProtocolError("the server closed the connection");
    if (reply instanceof LineOverflow) {
      throw new ProtocolError(`reply longer than ${MAX_REPLY} bytes`);
    }
    return decodeText(reply);
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Sends the same request `repeat` times over one connection; returns every reply. */
export async function call(
  target: Target,
  op: Operation,
  payload: string,
  repeat = 1,
): Promise<string[]> {
  const client = await TaskClient.connect(target);
  try {
    const replies: string[] = [];
    for (let i = 0; i < repeat; i++) replies.push(await client.request(op, payload));
    return replies;
  } finally {
    client.close();
  }
}

/** The study's menu text. */
export const MENU = "\n1. Change case\n2. Evaluate expression\n3. Reverse string\n4. Exit\n";

/** What the interactive client reads and writes (a terminal, a pipe, or a test). */
export interface Console {
  /** Next input line, or null at the end of input. */
  readLine(): Promise<string | null>;
  /** Writes text as is (prompts have no newline). */
  write(text: string): void;
}

/**
 * The study's interactive client: menu, choice, input, `Result: ...`, until `4`
 * or the end of input. Returns the number of requests answered.
 */
export async function interactive(target: Target, io: Console): Promise<number> {
  const client = await TaskClient.connect(target);
  io.write(`Connected to server at ${target.host}:${target.port}\n`);
  let answered = 0;
  try {
    for (;;) {
      io.write(MENU);
      io.write("Enter choice (1-4): ");
      const choice = await io.readLine();
      if (choice === null || choice.trim() === "4") break;
      if (!["1", "2", "3"].includes(choice.trim())) {
        io.write("Invalid choice\n");
        continue;
      }
      io.write("Enter input: ");
      const data = await io.readLine();
      if (data === null) break;
      io.write(`Result: ${await client.raw(`${choice.trim()}|${data}`)}\n`);
      answered++;
    }
  } finally {
    client.close();
  }
  return answered;
}

/** A {@linkcode Console} over stdin and a writer (stdin may be a terminal or a pipe). */
export function stdinConsole(write: (text: string) => void): Console {
  const reader = new BufferedReader(Deno.stdin.readable);
  return {
    async readLine() {
      const line = await reader.readLine(MAX_REPLY);
      if (line === null) return null;
      if (line instanceof LineOverflow) return "";
      return decodeText(line);
    },
    write,
  };
}
