/**
 * The `scanner` command line: parses, validates, calls the core, prints.
 * Loaded by `main.ts` only in the command-line role, so workers and children
 * (which only run probes) start without commander and the output code.
 *
 * @module
 */
import type { Command } from "commander";
import {
  addOutputOptions,
  createProgram,
  EXIT_FAILURE,
  EXIT_OK,
  intOption,
  jsonDocument,
  toolArgs,
  warn,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { parseMode } from "../shared/mode.ts";
import type { Progress } from "../shared/progress.ts";
import {
  DEFAULT_PORTS,
  excludePorts,
  parsePorts,
  parseTargetFile,
  parseTargetList,
  resolveTargets,
} from "./targets.ts";
import {
  autoMode,
  DEFAULT_CONCURRENCY,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_WORKERS,
  scan,
  type ScanResult,
} from "./scan.ts";
import { formatCsv, formatGrep, formatTable, jsonResults, parseShow } from "./output.ts";
import { addBenchCommand } from "./bench_command.ts";
import { resolveEngine } from "./engines.ts";
import { MAX_FFI_WINDOW } from "./ffi_engine.ts";

interface ScanFlags {
  ports: string;
  excludePorts?: string;
  inputList?: string;
  4?: boolean;
  6?: boolean;
  force: boolean;
  randomize: boolean;
  show: string;
  mode: string;
  engine: string;
  workers: number;
  concurrency?: number;
  timeout: number;
  retries: number;
  rate: number;
  csv: boolean;
  grep: boolean;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

/** nmap spells the target-list option `-iL`; commander only knows one-letter short flags. */
function normaliseArgs(args: string[]): string[] {
  return args.map((
    arg,
  ) => (arg === "-iL"
    ? "--input-list"
    : arg.startsWith("-iL=")
    ? `--input-list=${arg.slice(4)}`
    : arg)
  );
}

async function readTargetList(path: string): Promise<string[]> {
  try {
    const text = path === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(path);
    return parseTargetFile(text);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot read -iL '${path}': no such file`);
    }
    throw error;
  }
}

async function runScan(words: string[], flags: ScanFlags): Promise<number> {
  const started = performance.now();
  const auto = flags.mode.trim().toLowerCase() === "auto";
  const requestedMode = auto ? null : parseMode(flags.mode);
  if (flags[4] && flags[6]) throw new UsageError("Use only one of -4 and -6");
  const outputs = [flags.json, flags.csv, flags.grep].filter(Boolean).length;
  if (outputs > 1) throw new UsageError("Use only one of --json, --csv and --grep");
  const show = parseShow(flags.show);
  let ports = parsePorts(flags.ports, "-p");
  if (flags.excludePorts !== undefined) {
    ports = excludePorts(ports, parsePorts(flags.excludePorts, "--exclude-ports"));
    if (ports.length === 0) {
      throw new UsageError(
        `No ports left: --exclude-ports '${flags.excludePorts}' removes every port of -p '${flags.ports}'`,
      );
    }
  }
  const allWords = [...words, ...(flags.inputList ? await readTargetList(flags.inputList) : [])];
  if (allWords.length === 0) {
    throw new UsageError("No targets: give host names, addresses or CIDR blocks, or -iL FILE");
  }
  const specs = parseTargetList(allWords, flags.force);
  if (specs.length === 0) throw new UsageError(`No targets in '${allWords.join(" ")}'`);
  const family = flags[4] ? 4 : flags[6] ? 6 : undefined;
  const { targets, unresolved } = await resolveTargets(specs, { family });
  if (targets.length === 0) {
    throw new UsageError(
      unresolved.map((item) => `Cannot scan '${item.target}': ${item.reason}`).join("; "),
    );
  }
  for (const item of unresolved) {
    if (!flags.json) warn(`Cannot scan '${item.target}': ${item.reason}; scanning the others`);
  }

  const engine = resolveEngine(flags.engine);
  const chosen = requestedMode === null
    ? autoMode(targets.length * ports.length, flags.workers, engine)
    : { mode: requestedMode, workers: flags.workers };
  const mode = chosen.mode;
  let progress: Progress | null = null;
  const showProgress = !flags.json && !flags.quiet && Deno.stderr.isTerminal();
  let result: ScanResult;
  let finished = false;
  try {
    result = await scan({
      targets,
      ports,
      mode,
      engine,
      workers: chosen.workers,
      concurrency: flags.concurrency,
      timeoutMs: flags.timeout,
      retries: flags.retries,
      rate: flags.rate,
      randomize: flags.randomize,
      onProgress: showProgress
        ? (done, total) => {
          // Only scans that last over a second get a bar.
          if (!progress && performance.now() - started > 1000 && done < total) {
            progress = { update() {}, increment() {}, stop() {} };
            import("../shared/progress.ts").then(({ startProgress }) => {
              if (!finished) progress = startProgress(total, "ports");
            });
          }
          progress?.update(done);
        }
        : undefined,
    });
  } finally {
    // Leave the terminal clean even when the scan fails.
    finished = true;
    (progress as Progress | null)?.stop();
  }
  if (flags.verbose) {
    writeStderr(
      `scanned ${result.probes} probes in ${
        result.elapsedMs.toFixed(1)
      } ms (${result.mode}, ${result.engine} engine)\n`,
    );
  }
  if (flags.json) {
    const options = {
      targets: allWords,
      ports: flags.ports,
      exclude_ports: flags.excludePorts ?? null,
      mode: flags.mode,
      engine: flags.engine,
      workers: flags.workers,
      concurrency: flags.concurrency ?? null,
      timeout_ms: flags.timeout,
      retries: flags.retries,
      rate: flags.rate,
      randomize: flags.randomize,
      show: flags.show,
    };
    const error = unresolved.length > 0
      ? `${unresolved.length} target(s) could not be resolved: ${
        unresolved.map((u) => u.target).join(", ")
      }`
      : null;
    writeStdout(
      JSON.stringify(
        jsonDocument(
          "scanner",
          "scan",
          options,
          jsonResults(result, show, unresolved),
          performance.now() - started,
          error,
        ),
      ) + "\n",
    );
  } else if (flags.csv) writeStdout(formatCsv(result, show));
  else if (flags.grep) writeStdout(formatGrep(result, show));
  else writeStdout(formatTable(result, show, unresolved));
  return unresolved.length > 0 ? EXIT_FAILURE : EXIT_OK;
}

function addScanOptions(command: Command): Command {
  addOutputOptions(
    command
      .argument("[targets...]", "host names, IPv4/IPv6 addresses, CIDR blocks, comma lists")
      .option("-p, --ports <spec>", "ports: 22,80,1000-2000; -p- for 1-65535", DEFAULT_PORTS)
      .option("--exclude-ports <spec>", "ports to leave out (same syntax as -p)")
      .option("--input-list <file>", "read targets from FILE, one per line, - for stdin (also -iL)")
      .option("-4", "IPv4 addresses only")
      .option("-6", "IPv6 addresses only")
      .option("--force", "allow CIDR blocks larger than a /16", false)
      .option("--randomize", "scan ports in random order", false)
      .option("--show <states>", "states to list: open, all, or a list like open,filtered", "open")
      .option(
        "--mode <mode>",
        "sequential|async|thread|process, or auto: async with the ffi engine; with connect async up to 128 probes, else thread with up to --workers workers",
        "auto",
      )
      .option(
        "--engine <engine>",
        "connect engine: ffi (libc non-blocking connects, thousands in flight; needs --allow-ffi, Linux), connect (Deno.connect, ~128 in flight per isolate), or auto: ffi where it can run",
        "auto",
      )
      .option(
        "--workers <n>",
        "workers for thread and process modes (auto: up to this many)",
        intOption(1, 1000),
        DEFAULT_WORKERS,
      )
      .option(
        "--concurrency <n>",
        `probes in flight per worker (default: ${DEFAULT_CONCURRENCY} for connect, which caps real connects there; the open-file limit for ffi, at most ${MAX_FFI_WINDOW})`,
        intOption(1, 100000),
      )
      .option(
        "--timeout <ms>",
        "ms without an answer before a port is filtered",
        intOption(1, 600000),
        DEFAULT_TIMEOUT_MS,
      )
      .option(
        "--retries <n>",
        "extra attempts for ports that did not answer (a lost SYN is not a filter)",
        intOption(0, 10),
        1,
      )
      .option("--rate <n>", "at most N new connects per second, 0 for no cap", intOption(0), 0)
      .option("--csv", "print CSV: host,address,port,state,reason,service", false)
      .option("--grep", "print one grepable line per host", false),
  );
  return command;
}

/** Parses the command line and runs the tool; returns the exit code. */
export async function runCli(rawArgs: string[]): Promise<number> {
  // `deno task scanner -- args` passes the `--` through.
  const args = toolArgs(rawArgs);
  const program = createProgram("scanner", "TCP connect port scanner in four execution modes");
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  let code = EXIT_OK;
  const scanCommand = program
    .command("scan", { isDefault: true })
    .description("scan TCP ports (the default command: `scanner <targets...>`)");
  addScanOptions(scanCommand).action(async (words: string[], flags: ScanFlags) => {
    code = await runScan(words, flags);
  });
  addBenchCommand(program, (exit) => (code = exit));
  await program.parseAsync(normaliseArgs(args), { from: "user" });
  return code;
}
