/**
 * `scanner merge FILE...`: joins the `-oJ` files of shards (`--shard I/N`) or of
 * partial runs into one result, identical to one full scan's: per host, every
 * decided port from every file. Prints the table, `--grep` lines or (with
 * `--json`) one document, through `runCommand`.
 *
 * @module
 */
import type { Command } from "commander";
import { addOutputOptions, runCommand } from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import type { Mode } from "../shared/mode.ts";
import type { EngineName } from "./engines.ts";
import { formatGrep, formatTable, parseShow } from "./output.ts";
import { hostsOfDocument, jsonResults, mergeHosts } from "./records.ts";
import type { ScanResult } from "./scan_result.ts";
import { loadServices } from "./services.ts";

interface MergeFlags {
  show: string;
  grep: boolean;
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

interface Document {
  results?: {
    ports_per_host?: number;
    mode?: Mode;
    engine?: EngineName;
    workers?: number;
    concurrency?: number;
    timeout_ms?: number;
    retries?: number;
    scan_ms?: number;
    interrupted?: boolean;
  };
  options?: { ports_scanned?: string };
}

async function readDocument(path: string): Promise<Document> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot merge '${path}': no such file`);
    }
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`Cannot merge '${path}': not a JSON document (write one with -oJ)`);
  }
}

/** Merges `-oJ` documents into one scan result. */
export async function mergeFiles(paths: string[]): Promise<ScanResult> {
  if (paths.length === 0) throw new UsageError("Nothing to merge: give the -oJ files of a scan");
  const docs = await Promise.all(paths.map(readDocument));
  // A file that is not a scan's document is a failed merge (exit 1, `error` in JSON).
  const lists = docs.map((doc, i) => {
    try {
      return hostsOfDocument(doc, `Cannot merge '${paths[i]}':`);
    } catch (error) {
      throw new Error((error as Error).message);
    }
  });
  const hosts = mergeHosts(lists, loadServices());
  const first = docs[0].results ?? {};
  const probes = hosts.reduce((n, host) => n + host.ports.length, 0);
  return {
    hosts,
    portsPerHost: Math.max(0, ...hosts.map((host) => host.ports.length)),
    probes,
    mode: first.mode ?? "async",
    engine: first.engine ?? "connect",
    workers: first.workers ?? 1,
    concurrency: first.concurrency ?? 1,
    timeoutMs: first.timeout_ms ?? 0,
    retries: first.retries ?? 0,
    // The shards ran side by side: the slowest one's time.
    elapsedMs: Math.max(0, ...docs.map((doc) => doc.results?.scan_ms ?? 0)),
    interrupted: docs.some((doc) => doc.results?.interrupted === true),
  };
}

/** Adds `merge` to the program; `setExit` receives its exit code. */
export function addMergeCommand(program: Command, setExit: (code: number) => void): void {
  const command = program
    .command("merge")
    .description(
      "join the -oJ files of shards (--shard I/N) or partial runs into one result, as one full scan prints it",
    )
    .argument("<files...>", "-oJ files written by `scanner ... -oJ FILE`")
    .option("--show <states>", "states to list: open, all, or a list like open,filtered", "open")
    .option("--grep", "print one grepable line per host", false);
  addOutputOptions(command).action(async (files: string[], flags: MergeFlags) => {
    const show = parseShow(flags.show);
    setExit(
      await runCommand(
        "scanner",
        "merge",
        { files, show: flags.show, json: flags.json },
        async () => {
          const result = await mergeFiles(files);
          return {
            results: jsonResults(result, show),
            text: flags.grep ? formatGrep(result, show) : formatTable(result, show),
          };
        },
      ),
    );
  });
}
