/**
 * `transfer`'s command line: commands, options, validation and printing; the
 * cores it calls return data and never print. Loaded by main.ts only when the
 * process is not a worker or child.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  commandRunner,
  createProgram,
  EXIT_OK,
  intOption,
  type OutputFlags,
  runMain,
  toolArgs,
  writeStderr,
} from "../shared/cli.ts";
import { errorMessage, UsageError } from "../shared/errors.ts";
import { parseMode } from "../shared/mode.ts";
import { startProgress } from "../shared/progress.ts";
import {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_PORT,
  MAX_BLOCK_SIZE,
  MIN_BLOCK_SIZE,
  parseSize,
} from "./protocol.ts";
import {
  type ConnectOptions,
  defaultOutput,
  download,
  FAST_BLOCK_SIZE,
  FAST_WINDOW,
  simpleRequest,
  type TransferMode,
  type TransferOptions,
  type TransferResult,
} from "./client.ts";
import { addBenchCommand } from "./bench_cli.ts";
import { collectUploads, downloadMany, listRemote, type SetResult, uploadMany } from "./files.ts";
import { listText, setProgress, setText } from "./files_cli.ts";
import { parseRate } from "./rate.ts";
import { addServeCommand } from "./serve_command.ts";
import { describeTransfer } from "./fast_start.ts";

const TOOL = "transfer";

/**
 * Rewrites the study's spellings to ours: `-server_ip`/`--server_ip` → `--server`,
 * `-id` → `--id`, `-f`/`--f` → `--file`; a bare client command line (the course's
 * `client.py --server_ip IP --id ID --f FILE`) becomes `upload`.
 */
export function normalizeArgs(args: string[]): string[] {
  const out = args.map((arg) => {
    const [flag, ...rest] = arg.split("=");
    const value = rest.length > 0 ? `=${rest.join("=")}` : "";
    if (flag === "-server_ip" || flag === "--server_ip") return `--server${value}`;
    if (flag === "-id") return `--id${value}`;
    if (flag === "-f" || flag === "--f") return `--file${value}`;
    return arg;
  });
  if (out.length > 0 && out[0].startsWith("-") && out.some((a) => a.startsWith("--file"))) {
    return ["upload", ...out];
  }
  return out;
}

/** Runs a command body and prints its output (see `runCommand` in shared/cli.ts). */
const run = commandRunner(TOOL);

function addConnectionOptions(command: Command): Command {
  return command
    .option("--server <host>", "server address (the study's --server_ip works too)", "127.0.0.1")
    .option("--port <port>", "server port", intOption(1, 65535), DEFAULT_PORT)
    .option("--id <user>", "user id to log in as (the study's -id works too)")
    .option("--timeout <ms>", "milliseconds to wait for each reply", intOption(1), 30_000)
    .option("--tls", "connect with TLS (a server started with --tls-cert)", false)
    .option("--ca <file>", "with --tls: trust this PEM certificate (default: the system's roots)");
}

/** Where to connect and as whom, from the connection flags. */
function connectOptions(flags: ConnectionFlags): ConnectOptions {
  let tls: ConnectOptions["tls"];
  if (flags.tls || flags.ca !== undefined) {
    let caCerts: string[] | undefined;
    if (flags.ca !== undefined) {
      try {
        caCerts = [Deno.readTextFileSync(flags.ca)];
      } catch (error) {
        throw new UsageError(`Cannot read --ca ${flags.ca}: ${errorMessage(error)}`);
      }
    }
    tls = { caCerts };
  }
  return {
    host: flags.server,
    port: flags.port,
    id: requireId(flags),
    timeoutMs: flags.timeout,
    tls,
  };
}

function addTransferOptions(command: Command): Command {
  return command
    .option(
      "--mode <mode>",
      "auto (fast plan with our server, the course's lockstep otherwise), sequential, async, " +
        "thread or process",
      "auto",
    )
    .option("--streams <n>", "connections in thread and process modes", intOption(1, 64), 2)
    .option(
      "--window <w>",
      `blocks in flight per connection (default: ${FAST_WINDOW} in auto, 8 in async, thread, ` +
        "process; 1 in sequential)",
      intOption(1, 1024),
    )
    .option(
      "--block-size <bytes>",
      `block size (${MIN_BLOCK_SIZE}..${MAX_BLOCK_SIZE}; default: ${FAST_BLOCK_SIZE} in auto ` +
        `with our server, else ${DEFAULT_BLOCK_SIZE}; others need our server)`,
      blockSizeOption,
    )
    .option("--resume", "continue an interrupted transfer", false)
    .option("--block-md5", "send and check an MD5 per block (extension)", false);
}

function rateOption(value: string): number {
  try {
    return parseRate(value);
  } catch (error) {
    throw new UsageError(`Invalid --limit-rate '${value}': ${errorMessage(error)}`);
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return true; // Missing: the upload says `Cannot read PATH: no such file`.
  }
}

function localExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function blockSizeOption(value: string): number {
  let size: number;
  try {
    size = parseSize(value);
  } catch (error) {
    throw new UsageError(`Invalid --block-size '${value}': ${errorMessage(error)}`);
  }
  if (size < MIN_BLOCK_SIZE || size > MAX_BLOCK_SIZE) {
    throw new UsageError(
      `Invalid --block-size '${value}': must be from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE} bytes`,
    );
  }
  return size;
}

interface ConnectionFlags extends OutputFlags {
  server: string;
  port: number;
  id?: string;
  timeout: number;
  tls?: boolean;
  ca?: string;
}

function requireId(options: ConnectionFlags): string {
  if (options.id === undefined || options.id === "") {
    throw new UsageError("Missing --id USER: the user id to log in as");
  }
  return options.id;
}

interface TransferFlags extends ConnectionFlags {
  limitRate?: string;
  mode: string;
  streams: number;
  window?: number;
  blockSize?: number;
  resume: boolean;
  blockMd5: boolean;
}

function transferOptions(flags: TransferFlags, key: string): TransferOptions {
  const mode: TransferMode = flags.mode === "auto" ? "auto" : parseMode(flags.mode);
  const showToken = !flags.quiet && !flags.json;
  return {
    ...connectOptions(flags),
    key,
    mode,
    streams: flags.streams,
    window: flags.window,
    blockSize: flags.blockSize,
    resume: flags.resume,
    blockMd5: flags.blockMd5,
    limitRate: flags.limitRate === undefined ? undefined : rateOption(flags.limitRate),
    onToken: showToken ? (token) => writeStderr(`Token: ${token}\n`) : undefined,
  };
}

async function withProgress(
  flags: OutputFlags,
  options: TransferOptions,
  body: (options: TransferOptions) => Promise<TransferResult>,
): Promise<TransferResult> {
  let bar: ReturnType<typeof startProgress> | null = null;
  const enabled = !flags.quiet && !flags.json;
  try {
    return await body({
      ...options,
      onProgress: (done, total) => {
        bar ??= startProgress(Math.ceil(total / 1024), "KiB", enabled);
        bar.update(Math.floor(done / 1024));
      },
    });
  } finally {
    (bar as ReturnType<typeof startProgress> | null)?.stop();
  }
}

/** Parses the command line and runs the tool; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = createProgram(TOOL, "STEP v1.0 file-transfer server and client");
  let exitCode = EXIT_OK;
  const setExit = (code: number) => (exitCode = code);

  addServeCommand(program, run, setExit);

  addOutputOptions(addTransferOptions(addConnectionOptions(
    program.command("upload [paths...]")
      .description(
        "upload files and directories (recursively), each checked by MD5; unchanged ones are " +
          "skipped",
      )
      .option("--file <path>", "file to upload (the study's -f/--f)")
      .option("--key <key>", "key for a single file (default: the file's name)")
      .option("--prefix <prefix>", "put this in front of every key (e.g. photos/)")
      .option("--force", "overwrite a key stored with other content, or restart an upload", false)
      .option("--limit-rate <rate>", "bytes per second across all connections (e.g. 10MB)"),
  ))).action(async (paths: string[], flags) => {
    const given = [...paths, ...(flags.file ? [flags.file] : [])];
    if (given.length === 0) throw new UsageError("Missing PATH: give the files to upload");
    const single = given.length === 1 && flags.prefix === undefined && isFile(given[0]);
    if (flags.key !== undefined && !single) {
      throw new UsageError("--key names one file: use --prefix for several files or a directory");
    }
    const options = transferOptions(flags, "");
    // One token line for one file (the course's client prints it); none for a set.
    if (!single) options.onToken = undefined;
    setExit(
      await run("upload", flags, async () => {
        const entries = collectUploads(given, flags.prefix ?? "");
        if (single && flags.key !== undefined) entries[0].key = flags.key;
        const progress = setProgress(!flags.quiet && !flags.json);
        let result: SetResult;
        try {
          result = await uploadMany(entries, {
            ...options,
            prefix: flags.prefix,
            force: flags.force,
            onProgress: progress.onProgress,
          });
        } finally {
          progress.stop();
        }
        if (single) {
          const row = result.files[0];
          if (row.status === "failed") throw new Error(row.reason);
          if (row.result) {
            return { results: row.result, text: describeTransfer("Uploaded", row.result) };
          }
          return { results: row, text: `Skipped '${row.key}': ${row.reason}` };
        }
        return { results: result, text: setText(result, "uploaded"), ok: result.failed === 0 };
      }),
    );
  });

  addOutputOptions(addTransferOptions(addConnectionOptions(
    program.command("download [keys...]")
      .description("download keys, each verified by MD5 before it gets its name")
      .option(
        "-o, --output <path>",
        "file for one key (default: its last part); directory for several or --all",
      )
      .option("--all", "every finished key (under --prefix) into the -o directory", false)
      .option("--prefix <prefix>", "with --all: only keys starting with this")
      .option(
        "--force",
        "overwrite existing local files (a set skips those with the same MD5)",
        false,
      )
      .option("--limit-rate <rate>", "bytes per second across all connections (e.g. 10MB)"),
  ))).action(async (keys: string[], flags) => {
    if (keys.length === 0 && !flags.all) {
      throw new UsageError("Missing KEY: name the keys to download, or use --all");
    }
    if (keys.length > 0 && flags.all) throw new UsageError("Give KEY... or --all, not both");
    if (keys.length === 1 && !flags.all) {
      const key = keys[0];
      const path = flags.output ?? defaultOutput(key);
      const options = { ...transferOptions(flags, key) };
      setExit(
        await run("download", flags, async () => {
          if (!flags.force && localExists(path)) {
            throw new Error(`${path} already exists: use --force to overwrite it`);
          }
          const result = await withProgress(flags, options, (o) => download(path, o));
          return { results: result, text: describeTransfer("Downloaded", result) };
        }),
      );
      return;
    }
    const options = { ...transferOptions(flags, ""), onToken: undefined };
    setExit(
      await run("download", flags, async () => {
        const progress = setProgress(!flags.quiet && !flags.json);
        let result: SetResult;
        try {
          result = await downloadMany(keys, flags.output ?? ".", {
            ...options,
            all: flags.all,
            prefix: flags.prefix,
            force: flags.force,
            onProgress: progress.onProgress,
          });
        } finally {
          progress.stop();
        }
        return { results: result, text: setText(result, "downloaded"), ok: result.failed === 0 };
      }),
    );
  });

  addOutputOptions(addConnectionOptions(
    program.command("list [prefix]")
      .description("list stored keys: size, MD5, complete or not (LIST extension)"),
  )).action(async (prefix: string | undefined, flags) => {
    setExit(
      await run("list", flags, async () => {
        const listed = await listRemote(
          connectOptions(flags),
          prefix ?? "",
        );
        if (listed === null) {
          throw new Error("The server does not support LIST (a course server?)");
        }
        return { results: listed, text: listText(listed.files, listed.truncated) };
      }),
    );
  });

  for (
    const [name, operation, description] of [
      ["delete", "DELETE", "delete a stored file (or an unfinished upload)"],
      ["status", "STATUS", "show an upload's received and missing blocks (extension)"],
    ] as const
  ) {
    addOutputOptions(
      addConnectionOptions(program.command(`${name} <key>`).description(description)),
    )
      .action(async (key: string, flags) => {
        setExit(await run(name, flags, () => fileCommand(flags, operation, key)));
      });
  }

  const data = program.command("data").description("DATA key-value operations");
  addOutputOptions(addConnectionOptions(
    data.command("save [fields...]")
      .description("save NAME=VALUE fields under a key (the whole request is stored)")
      .option("--key <key>", "key (default: the server picks a UUID)"),
  )).action(async (fields: string[], flags) => {
    const extra: Record<string, string> = {};
    for (const field of fields) {
      const at = field.indexOf("=");
      if (at <= 0) throw new UsageError(`Invalid field '${field}': expected NAME=VALUE`);
      extra[field.slice(0, at)] = field.slice(at + 1);
    }
    if (flags.key !== undefined) extra.key = flags.key;
    setExit(await run("data save", flags, () => dataCommand(flags, "SAVE", extra)));
  });
  for (const operation of ["GET", "DELETE"] as const) {
    addOutputOptions(addConnectionOptions(
      data.command(`${operation.toLowerCase()} <key>`).description(`DATA ${operation} a key`),
    )).action(async (key: string, flags) => {
      setExit(
        await run(
          `data ${operation.toLowerCase()}`,
          flags,
          () => dataCommand(flags, operation, { key }),
        ),
      );
    });
  }

  addBenchCommand(program, setExit);

  if (args.length === 0) {
    program.outputHelp();
    return EXIT_OK;
  }
  await program.parseAsync(normalizeArgs(args), { from: "user" });
  return exitCode;
}

async function fileCommand(
  flags: ConnectionFlags,
  operation: string,
  key: string,
): Promise<{ results: unknown; text: string }> {
  const { reply } = await simpleRequest(
    connectOptions(flags),
    "FILE",
    operation,
    { key },
  );
  if (reply.status !== 200) {
    throw new Error(`FILE ${operation} '${key}': ${reply.status} ${reply.status_msg}`);
  }
  let text = `${reply.status} ${reply.status_msg}`;
  if (operation === "STATUS" && Array.isArray(reply.missing_blocks)) {
    const missing = reply.missing_blocks as number[];
    text += `\nmissing blocks: ${missing.length}` +
      (missing.length > 0 ? ` (first: ${missing.slice(0, 10).join(", ")})` : "");
    if (reply.md5) text += `\nmd5: ${reply.md5}`;
  }
  return { results: reply, text };
}

async function dataCommand(
  flags: ConnectionFlags,
  operation: string,
  fields: Record<string, unknown>,
): Promise<{ results: unknown; text: string }> {
  const { reply } = await simpleRequest(
    connectOptions(flags),
    "DATA",
    operation,
    fields,
  );
  if (reply.status !== 200) {
    throw new Error(`DATA ${operation}: ${reply.status} ${reply.status_msg}`);
  }
  const text = operation === "GET"
    ? JSON.stringify(reply, null, 2)
    : `${reply.status} ${reply.status_msg}`;
  return { results: reply, text };
}

/** Runs the command line of this process and exits with its code (see shared/cli.ts). */
export async function runCli(): Promise<void> {
  await runMain(TOOL, () => main(toolArgs()));
}
