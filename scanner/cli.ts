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
  EXIT_OK,
  intOption,
  numberOption,
  toolArgs,
} from "../shared/cli.ts";
import { DEFAULT_MAX_RTT_MS, DEFAULT_MIN_RTT_MS } from "./timing.ts";
import { DEFAULT_BANNER_BYTES, DEFAULT_BANNER_TIMEOUT_MS } from "./banners.ts";
import { DEFAULT_PORTS } from "./targets.ts";
import { DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS, DEFAULT_WORKERS } from "./scan.ts";
import { addBenchCommand } from "./bench_command.ts";
import { MAX_FFI_WINDOW } from "./ffi_engine.ts";
import { runScan, type ScanFlags } from "./scan_command.ts";
import { addMergeCommand } from "./merge_command.ts";

/** nmap's two-letter options; commander only knows one-letter short flags. */
const NMAP_OPTIONS: Record<string, string> = {
  "-iL": "--input-list",
  "-oN": "--output-normal",
  "-oG": "--output-grepable",
  "-oJ": "--output-json",
  "-oA": "--output-all",
};

function normaliseArgs(args: string[]): string[] {
  return args.flatMap((arg) => {
    const short = arg.slice(0, 3);
    const long = NMAP_OPTIONS[short];
    if (!long) return [arg];
    if (arg.length === 3) return [long];
    return [`${long}=${arg.slice(arg[3] === "=" ? 4 : 3)}`];
  });
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
      .option(
        "--randomize",
        "scan hosts and ports in one random order (seeded: see --seed)",
        false,
      )
      .option(
        "--seed <n>",
        "seed of the random order (--randomize, --shard; default: random, or 0 with --shard)",
        intOption(0, 2 ** 32 - 1),
      )
      .option(
        "--shard <i/n>",
        "scan only shard I of N (0-based) of the seeded order of hosts × ports; `scanner merge` joins the shards' -oJ files",
      )
      .option(
        "--top-ports <n>",
        "the N most often open TCP ports (nmap-services frequencies when nmap is installed, else a shipped list of 1000)",
        intOption(1, 65535),
      )
      .option("--exclude <hosts>", "addresses, CIDR blocks or names to leave out (comma list)")
      .option("--exclude-file <file>", "leave out the targets listed in FILE (as -iL)")
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
        "ms a port may take to answer before its host has answered anything (then adaptive: srtt + 4 × rttvar)",
        intOption(1, 600000),
        DEFAULT_TIMEOUT_MS,
      )
      .option(
        "-T, --timing <level>",
        "timing preset 0-5 (paranoid, sneaky, polite, normal, aggressive, insane; see README); explicit options win",
      )
      .option(
        "--min-rtt-timeout <ms>",
        `adaptive timeouts never go below this (per host, from its round trips; default: ${DEFAULT_MIN_RTT_MS} with ffi, --timeout with connect)`,
        intOption(1, 600000),
      )
      .option(
        "--max-rtt-timeout <ms>",
        "adaptive timeouts never go above this",
        intOption(1, 600000),
        DEFAULT_MAX_RTT_MS,
      )
      .option(
        "--retries <n>",
        "extra attempts for ports that did not answer (a lost SYN is not a filter)",
        intOption(0, 10),
        1,
      )
      .option(
        "--rate <n>",
        "at most N new connects per second (fractions allowed), 0 for no cap",
        numberOption(0),
        0,
      )
      .option("--csv", "print CSV: host,address,port,state,reason,service", false)
      .option("--grep", "print one grepable line per host", false)
      .option(
        "--jsonl",
        "print each shown port as a JSON line as it is decided, then a summary line",
        false,
      )
      .option("--banners", "read what each open port says first (bounded bytes and time)", false)
      .option(
        "--banner-bytes <n>",
        "most bytes of a banner",
        intOption(1, 65536),
        DEFAULT_BANNER_BYTES,
      )
      .option(
        "--banner-timeout <ms>",
        "how long to wait for a banner",
        intOption(1, 60000),
        DEFAULT_BANNER_TIMEOUT_MS,
      )
      .option("--output-normal <file>", "also write the table to FILE (also -oN)")
      .option("--output-grepable <file>", "also write grepable lines to FILE (also -oG)")
      .option(
        "--output-json <file>",
        "also write the JSON document to FILE; --resume reads it (also -oJ)",
      )
      .option("--output-all <base>", "-oN BASE.nmap, -oG BASE.gnmap and -oJ BASE.json (also -oA)")
      .option(
        "--resume <file>",
        "continue the scan a -oJ FILE was written for (after Ctrl-C): skips the ports it has",
      ),
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
  addScanOptions(scanCommand).action(async (words: string[], flags: ScanFlags, cmd: Command) => {
    const given = new Set(
      cmd.options.map((option) => option.attributeName())
        .filter((name) => cmd.getOptionValueSource(name) === "cli"),
    );
    code = await runScan(words, flags, given);
  });
  addBenchCommand(program, (exit) => (code = exit));
  addMergeCommand(program, (exit) => (code = exit));
  await program.parseAsync(normaliseArgs(args), { from: "user" });
  return code;
}
