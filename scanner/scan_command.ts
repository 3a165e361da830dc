/**
 * The `scan` command body: validates flags, builds the target and port lists,
 * runs the scan, and prints and writes its results (`--json`, `--jsonl`,
 * `--csv`, `--grep`, `-oN/-oG/-oJ/-oA`). Ctrl-C stops the scan, prints and
 * writes what was decided so far, and exits 130; `--resume FILE` continues from
 * a written `-oJ` file.
 *
 * @module
 */
import {
  EXIT_FAILURE,
  EXIT_INTERRUPTED,
  EXIT_OK,
  exitCodeAfter,
  jsonDocument,
  warn,
  watchStopSignals,
  writeStderr,
  writeStdout,
} from "../shared/cli.ts";
import { UsageError } from "../shared/errors.ts";
import { parseMode } from "../shared/mode.ts";
import type { Progress } from "../shared/progress.ts";
import {
  excludePorts,
  parsePorts,
  parseTargetFile,
  parseTargetList,
  resolveTargets,
  type ScanTarget,
} from "./targets.ts";
import { autoMode, type Probe, scan, type ScanResult } from "./scan.ts";
import {
  type ExcludeSet,
  excludeSet,
  parseShard,
  selectProbes,
  topPorts,
  withoutExcluded,
} from "./selection.ts";
import { formatCsv, formatGrep, formatTable, parseShow } from "./output.ts";
import { resolveEngine } from "./engines.ts";
import { DEFAULT_MIN_RTT_MS, parseTiming } from "./timing.ts";
import { BannerGrabber } from "./banners.ts";
import {
  compressPorts,
  hostsOfDocument,
  jsonlPort,
  jsonlSummary,
  jsonResults,
  mergeHosts,
} from "./records.ts";
import { loadServices } from "./services.ts";
import { countStates } from "./scan_result.ts";

/** The scan command's flags, as commander gives them. */
export interface ScanFlags {
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
  jsonl: boolean;
  outputNormal?: string;
  outputGrepable?: string;
  outputJson?: string;
  outputAll?: string;
  resume?: string;
  topPorts?: number;
  exclude?: string;
  excludeFile?: string;
  seed?: number;
  shard?: string;
  timing?: string;
  banners: boolean;
  bannerBytes: number;
  bannerTimeout: number;
  minRttTimeout?: number;
  maxRttTimeout: number;
  verbose: boolean;
  quiet: boolean;
}

async function readText(path: string, option: string): Promise<string> {
  try {
    return path === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Cannot read ${option} '${path}': no such file`);
    }
    throw error;
  }
}

/** Writes `text` to `path` through a temporary name, renamed once complete. */
async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, path);
}

/** The files `-oN/-oG/-oJ/-oA` ask for. */
function outputFiles(flags: ScanFlags): { normal?: string; grepable?: string; json?: string } {
  const base = flags.outputAll;
  return {
    normal: flags.outputNormal ?? (base ? `${base}.nmap` : undefined),
    grepable: flags.outputGrepable ?? (base ? `${base}.gnmap` : undefined),
    json: flags.outputJson ?? (base ? `${base}.json` : undefined),
  };
}

/** A resumed scan's earlier results and the options it was started with. */
interface Resumed {
  hosts: ReturnType<typeof hostsOfDocument>;
  options: Record<string, unknown>;
}

async function readResume(path: string): Promise<Resumed> {
  const text = await readText(path, "--resume");
  let doc: { options?: Record<string, unknown> };
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UsageError(`Cannot resume from '${path}': not a JSON document (write one with -oJ)`);
  }
  return {
    hosts: hostsOfDocument(doc, `Cannot resume from '${path}':`),
    options: doc.options ?? {},
  };
}

/** Runs `scanner [scan] targets... [flags]`; returns the exit code. */
export async function runScan(
  givenWords: string[],
  flags: ScanFlags,
  sources: ReadonlySet<string> = new Set(),
): Promise<number> {
  const started = performance.now();
  const resumed = flags.resume ? await readResume(flags.resume) : null;
  let words = givenWords;
  if (resumed && words.length === 0 && !flags.inputList) {
    // `scanner --resume FILE`: the targets and ports the file was written with.
    const options = resumed.options;
    words = Array.isArray(options.targets) ? options.targets.map(String) : [];
    if (typeof options.ports_scanned === "string") flags.ports = options.ports_scanned;
    flags.excludePorts = undefined;
    flags.topPorts = undefined;
    if (typeof options.shard === "string") flags.shard ??= options.shard;
    if (typeof options.seed === "number") flags.seed ??= options.seed;
  }
  const auto = flags.mode.trim().toLowerCase() === "auto";
  const requestedMode = auto ? null : parseMode(flags.mode);
  if (flags[4] && flags[6]) throw new UsageError("Use only one of -4 and -6");
  const outputs = [flags.json, flags.jsonl, flags.csv, flags.grep].filter(Boolean).length;
  if (outputs > 1) throw new UsageError("Use only one of --json, --jsonl, --csv and --grep");
  const show = parseShow(flags.show);
  const given = (name: string) => sources.has(name);
  if (flags.topPorts !== undefined && given("ports")) {
    throw new UsageError("Use only one of -p and --top-ports");
  }
  const top = flags.topPorts !== undefined ? topPorts(flags.topPorts) : null;
  let ports = top ? top.ports : parsePorts(flags.ports, "-p");
  if (flags.excludePorts !== undefined) {
    ports = excludePorts(ports, parsePorts(flags.excludePorts, "--exclude-ports"));
    if (ports.length === 0) {
      throw new UsageError(
        `No ports left: --exclude-ports '${flags.excludePorts}' removes every port to scan`,
      );
    }
  }
  const allWords = [
    ...words,
    ...(flags.inputList ? parseTargetFile(await readText(flags.inputList, "-iL")) : []),
  ];
  if (allWords.length === 0) {
    throw new UsageError("No targets: give host names, addresses or CIDR blocks, or -iL FILE");
  }
  const specs = parseTargetList(allWords, flags.force);
  if (specs.length === 0) throw new UsageError(`No targets in '${allWords.join(" ")}'`);
  const family = flags[4] ? 4 : flags[6] ? 6 : undefined;
  const resolved = await resolveTargets(specs, { family });
  const unresolved = resolved.unresolved;
  const exclude = await excludeOf(flags);
  const targets = exclude ? withoutExcluded(resolved.targets, exclude) : resolved.targets;
  if (targets.length === 0 && resolved.targets.length > 0) {
    throw new UsageError("No targets left: --exclude/--exclude-file removes every address");
  }
  if (targets.length === 0) {
    throw new UsageError(
      unresolved.map((item) => `Cannot scan '${item.target}': ${item.reason}`).join("; "),
    );
  }
  const machine = flags.json || flags.jsonl;
  for (const item of unresolved) {
    if (!machine) warn(`Cannot scan '${item.target}': ${item.reason}; scanning the others`);
  }

  const services = loadServices();
  const earlier = resumed ? mergeHosts([resumed.hosts], services) : [];
  // A -T preset sets what the command line does not.
  const preset = flags.timing !== undefined ? parseTiming(flags.timing) : null;
  if (preset) {
    if (!given("timeout")) flags.timeout = preset.timeout;
    if (!given("minRttTimeout")) flags.minRttTimeout = preset.minRtt;
    if (!given("maxRttTimeout")) flags.maxRttTimeout = preset.maxRtt;
    if (!given("retries")) flags.retries = preset.retries;
    if (!given("rate")) flags.rate = preset.rate;
    if (!given("concurrency") && preset.concurrency !== undefined) {
      flags.concurrency = preset.concurrency;
    }
  }
  const shard = flags.shard !== undefined ? parseShard(flags.shard) : undefined;
  // Shards must agree on the order: a fixed default seed; a lone --randomize draws one.
  const seed = flags.seed ??
    (shard ? 0 : flags.randomize ? Math.floor(Math.random() * 2 ** 32) : undefined);
  const probes = withoutDone(
    selectProbes(targets.length, ports, { seed, shard }),
    targets,
    earlier,
  );
  const engine = resolveEngine(flags.engine);
  // The ffi engine reads every answer that arrived before it judges a deadline, so
  // its timeouts may shrink to nmap's 100 ms; Deno.connect in a starved isolate
  // can miss an answer for longer, so there they only grow from --timeout.
  const minRtt = flags.minRttTimeout ??
    (engine === "ffi" ? Math.min(DEFAULT_MIN_RTT_MS, flags.timeout) : flags.timeout);
  if (minRtt > flags.maxRttTimeout) {
    throw new UsageError(
      `--min-rtt-timeout ${minRtt} is above --max-rtt-timeout ${flags.maxRttTimeout}`,
    );
  }
  const chosen = requestedMode === null
    ? autoMode(probes.length, flags.workers, engine)
    : { mode: requestedMode, workers: flags.workers };
  const grabber = flags.banners
    ? new BannerGrabber({ maxBytes: flags.bannerBytes, timeoutMs: flags.bannerTimeout })
    : null;
  const grabs: Promise<void>[] = [];
  const banners = new Map<string, string | null>();
  // SIGINT/SIGTERM: stop, print and write what was found, then exit 130/143.
  const stop = watchStopSignals();
  let progress: Progress | null = null;
  const showProgress = !machine && !flags.quiet && Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let result: ScanResult;
  let finished = false;
  try {
    result = await scan({
      targets,
      ports,
      probes,
      mode: chosen.mode,
      engine,
      workers: chosen.workers,
      concurrency: flags.concurrency,
      timeoutMs: flags.timeout,
      minRttMs: minRtt,
      maxRttMs: flags.maxRttTimeout,
      retries: flags.retries,
      rate: flags.rate,
      services,
      signal: stop.abort,
      onPort: flags.jsonl || grabber
        ? (host, port) => {
          if (grabber && port.state === "open") {
            // The banner is read over a new connection while the scan goes on.
            grabs.push(
              grabber.grab(host.address, port.port).then((banner) => {
                banners.set(`${host.address} ${port.port}`, banner);
                if (flags.jsonl && show.includes("open")) {
                  Deno.stdout.writeSync(encoder.encode(jsonlPort(host, { ...port, banner })));
                }
              }),
            );
            return;
          }
          // One line per finding, written at once (a reader sees it as it comes).
          if (flags.jsonl && show.includes(port.state)) {
            Deno.stdout.writeSync(encoder.encode(jsonlPort(host, port)));
          }
        }
        : undefined,
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
    stop.dispose();
  }
  if (grabber) {
    await Promise.all(grabs);
    for (const host of result.hosts) {
      for (const port of host.ports) {
        if (port.state === "open") {
          port.banner = banners.get(`${host.address} ${port.port}`) ?? null;
        }
      }
    }
  }
  if (earlier.length > 0) result = withEarlier(result, earlier);
  if (flags.verbose) {
    writeStderr(
      `scanned ${result.probes} probes in ${
        result.elapsedMs.toFixed(1)
      } ms (${result.mode}, ${result.engine} engine)\n`,
    );
  }
  const options = {
    targets: allWords,
    ports: flags.ports,
    ports_scanned: compressPorts(ports),
    exclude_ports: flags.excludePorts ?? null,
    mode: flags.mode,
    engine: flags.engine,
    workers: flags.workers,
    concurrency: flags.concurrency ?? null,
    timeout_ms: flags.timeout,
    min_rtt_timeout_ms: minRtt,
    max_rtt_timeout_ms: flags.maxRttTimeout,
    timing: preset?.name ?? null,
    retries: flags.retries,
    rate: flags.rate,
    randomize: flags.randomize,
    seed: seed ?? null,
    shard: flags.shard ?? null,
    top_ports: flags.topPorts ?? null,
    top_ports_source: top?.source ?? null,
    exclude: flags.exclude ?? null,
    exclude_file: flags.excludeFile ?? null,
    show: flags.show,
    resume: flags.resume ?? null,
    banners: flags.banners,
  };
  const problems = [
    ...(unresolved.length > 0
      ? [
        `${unresolved.length} target(s) could not be resolved: ${
          unresolved.map((u) => u.target).join(", ")
        }`,
      ]
      : []),
    ...(result.interrupted ? ["interrupted: partial results"] : []),
  ];
  const error = problems.length > 0 ? problems.join("; ") : null;
  const document = () =>
    JSON.stringify(
      jsonDocument(
        "scanner",
        "scan",
        options,
        jsonResults(result, show, unresolved),
        performance.now() - started,
        error,
      ),
    ) + "\n";
  const files = outputFiles(flags);
  if (files.normal) await writeFileAtomic(files.normal, formatTable(result, show, unresolved));
  if (files.grepable) await writeFileAtomic(files.grepable, formatGrep(result, show));
  if (files.json) await writeFileAtomic(files.json, document());
  if (flags.json) writeStdout(document());
  else if (flags.jsonl) {
    writeStdout(jsonlSummary(result.hosts, {
      probes: result.probes,
      mode: result.mode,
      engine: result.engine,
      interrupted: result.interrupted,
      scan_ms: Math.round(result.elapsedMs * 1000) / 1000,
      error,
    }));
  } else if (flags.csv) writeStdout(formatCsv(result, show));
  else if (flags.grep) writeStdout(formatGrep(result, show));
  else writeStdout(formatTable(result, show, unresolved));
  if (result.interrupted) {
    // On stderr, so it is said under --json and --jsonl too (stdout holds only results).
    writeStderr(`scanner: interrupted by ${stop.signal}: the results are partial\n`);
    return exitCodeAfter(stop.signal, EXIT_INTERRUPTED);
  }
  return unresolved.length > 0 ? EXIT_FAILURE : EXIT_OK;
}

/** The probes not already decided in `earlier` (a resumed file). */
function withoutDone(
  probes: Probe[],
  targets: ScanTarget[],
  earlier: { address: string; ports: { port: number }[] }[],
): Probe[] {
  if (earlier.length === 0) return probes;
  const done = new Map(
    earlier.map((host) => [host.address, new Set(host.ports.map((p) => p.port))]),
  );
  return probes.filter((probe) => !done.get(targets[probe.host].address)?.has(probe.port));
}

/** The addresses `--exclude` and `--exclude-file` leave out (names resolved), or null. */
async function excludeOf(flags: ScanFlags): Promise<ExcludeSet | null> {
  const words = [
    ...(flags.exclude ? [flags.exclude] : []),
    ...(flags.excludeFile
      ? parseTargetFile(await readText(flags.excludeFile, "--exclude-file"))
      : []),
  ];
  if (words.length === 0) return null;
  const specs = parseTargetList(words, true);
  const names = specs.filter((spec) => spec.kind === "name");
  const { targets, unresolved } = await resolveTargets(names);
  if (unresolved.length > 0) {
    throw new UsageError(
      unresolved.map((item) => `Cannot exclude '${item.target}': ${item.reason}`).join("; "),
    );
  }
  return excludeSet(specs, targets.map((t) => t.address));
}

/** The result with the ports a resumed file had already decided added in. */
function withEarlier(result: ScanResult, earlier: ReturnType<typeof mergeHosts>): ScanResult {
  const before = new Map(earlier.map((host) => [host.address, host]));
  const hosts = result.hosts.map((host) => {
    const old = before.get(host.address);
    if (!old) return host;
    const ports = [...old.ports, ...host.ports].sort((a, b) => a.port - b.port);
    return { ...host, ports, counts: countStates(ports) };
  });
  return {
    ...result,
    hosts,
    probes: result.probes + earlier.reduce((n, h) => n + h.ports.length, 0),
  };
}
