/**
 * `transfer serve`: its options and the command around `startServer`, which
 * serves until SIGINT or SIGTERM and then reports what it served.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  addServerLimitOptions,
  type commandRunner,
  exitCodeAfter,
  intOption,
  watchStopSignals,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { parseMode } from "../shared/mode.ts";
import { COURSE_SECRET, DEFAULT_PORT, parseSize } from "./protocol.ts";
import { DEFAULT_SETTINGS, startServer } from "./server.ts";
import { readKeyPair } from "./tls.ts";

/** Adds `serve` to the program. */
export function addServeCommand(
  program: Command,
  run: ReturnType<typeof commandRunner>,
  setExit: (code: number) => void,
): void {
  addOutputOptions(addServerLimitOptions(
    program.command("serve")
      .description('run a STEP v1.0 server (prints "Server is ready")')
      .option("--host <host>", "address to listen on", "0.0.0.0")
      .option("--port <port>", "port to listen on", intOption(0, 65535), DEFAULT_PORT)
      .option("--root <dir>", "storage root", DEFAULT_SETTINGS.root)
      .option("--mode <mode>", "server mode: sequential, async, thread or process", "async")
      .option(
        "--workers <n>",
        "workers or children in thread and process modes",
        intOption(1, 64),
        2,
      )
      .option("--per-connection", "thread/process: one worker or child per connection", false)
      .option(
        "--secret <text>",
        "token secret (default: a random one kept in ROOT/.step-secret, mode 0600)",
      )
      .option(
        "--token-ttl <seconds>",
        "token lifetime; 0 = never expires (course)",
        intOption(0),
        0,
      )
      .option(
        "--max-file-size <bytes>",
        "largest file a SAVE may announce",
        (v: string) => parseSize(v),
        DEFAULT_SETTINGS.maxFileSize,
      )
      .option("--idle-timeout <ms>", "close connections silent this long", intOption(1), 300_000)
      .option("--tls-cert <file>", "serve over TLS with this PEM certificate (with --tls-key)")
      .option("--tls-key <file>", "PEM private key for --tls-cert")
      .option(
        "--plan-ttl <seconds>",
        "remove an unfinished upload after this long without a block; 0 = never",
        intOption(0),
        DEFAULT_SETTINGS.planTtl,
      )
      .option(
        "--max-plans-per-user <n>",
        "unfinished uploads one user may have",
        intOption(1),
        DEFAULT_SETTINGS.maxPlansPerUser,
      )
      .option(
        "--max-plans <n>",
        "unfinished uploads in the whole root",
        intOption(1),
        DEFAULT_SETTINGS.maxPlans,
      )
      .option(
        "--max-buffered <bytes>",
        "bytes all connections of one worker may buffer (beyond 48 KiB each)",
        (v: string) => parseSize(v),
        DEFAULT_SETTINGS.maxBuffered,
      ),
  )).action(async (flags) => {
    setExit(await run("serve", flags, () => serveCommand(flags)));
  });
}

async function serveCommand(
  // deno-lint-ignore no-explicit-any
  flags: any,
): Promise<{ results: unknown; text: string; exitCode?: number }> {
  const mode = parseMode(flags.mode);
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together: give both, or neither");
  }
  // Listen for signals before announcing the address: a script may stop the
  // server as soon as it reads it.
  const stop = watchStopSignals();
  let operations = 0;
  let errors = 0;
  const server = await startServer({
    host: flags.host,
    port: flags.port,
    root: flags.root,
    mode,
    workers: flags.workers,
    perConnection: flags.perConnection,
    secret: flags.secret,
    tokenTtl: flags.tokenTtl,
    maxFileSize: flags.maxFileSize,
    idleTimeoutMs: flags.idleTimeout,
    backlog: flags.backlog,
    maxConnections: flags.maxConnections,
    planTtl: flags.planTtl,
    maxPlansPerUser: flags.maxPlansPerUser,
    maxPlans: flags.maxPlans,
    maxBuffered: flags.maxBuffered,
    tls: flags.tlsCert ? readKeyPair(flags.tlsCert, flags.tlsKey) : undefined,
    onLog: (event) => {
      operations++;
      if (event.level === "error") errors++;
      if (!flags.quiet && (event.level === "error" || !flags.json)) {
        writeStderr(`${new Date().toISOString()} ${event.line}\n`);
      }
    },
  });
  const ready =
    `Server is ready on ${server.hostname}:${server.port} (${mode}, root ${flags.root}` +
    `${flags.tlsCert ? ", TLS" : ""})`;
  if (!flags.json) writeStdout(ready + "\n");
  else writeStderr(ready + "\n");
  if (flags.secret === COURSE_SECRET && !flags.quiet) {
    writeStderr(
      "warning: the token secret is the course's public one: anyone can forge tokens\n",
    );
  }
  // Serve until SIGINT or SIGTERM, then close cleanly and exit 130 or 143.
  await Promise.race([stop.received, server.finished]);
  await server.close();
  stop.dispose();
  return {
    results: { host: server.hostname, port: server.port, mode, operations, errors },
    text: `Server stopped after ${operations} logged operations (${errors} errors)`,
    exitCode: exitCodeAfter(stop.signal),
  };
}
