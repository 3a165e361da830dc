/**
 * `interarrival serve` as a core: starts the receiver, waits for a stop
 * (signal, duration, closed-connection count), stops it and returns what it
 * measured. Never prints; progress goes to `log`.
 *
 * @module
 */
import { type ReceiverHooks, type ReceiverOptions, startReceiver } from "./server.ts";
import type { ReceiverResult } from "./server.ts";
import { SampleLog } from "./sample_log.ts";
import { watchStopSignals } from "../shared/cli.ts";

/** Options for {@linkcode runServe}. */
export interface ServeCommandOptions extends Omit<ReceiverOptions, "log"> {
  /** Stop after this many seconds. */
  durationS?: number;
  /** Stop once this many connections have closed (TCP). */
  connections?: number;
  /** `FILE.csv`: stream every sample there; `FILE.json`: the summary and connection records. */
  out?: string;
}

/** What `serve` returns. */
export interface ServeOutcome extends ReceiverResult {
  port: number;
  stoppedBy: string;
  /** The file written, if any. */
  wrote: string | null;
}

/** Runs the server until a stop condition; `onReady` gets the bound address. */
export async function runServe(
  options: ServeCommandOptions,
  hooks: ReceiverHooks,
  onReady: (hostname: string, port: number) => void,
): Promise<ServeOutcome> {
  const json = options.out !== undefined && /\.json$/i.test(options.out);
  const log = options.out !== undefined && !json ? SampleLog.open(options.out) : null;
  const receiver = await startReceiver({ ...options, log }, hooks);
  onReady(receiver.hostname, receiver.port);
  let stoppedBy = "";
  // SIGINT/SIGTERM stop the server, which still prints and writes everything (a second one exits).
  const signals = watchStopSignals();
  await new Promise<void>((resolve) => {
    const timers: ReturnType<typeof setTimeout>[] = [];
    function stop(why: string) {
      if (stoppedBy) return;
      stoppedBy = why;
      for (const timer of timers) clearTimeout(timer);
      resolve();
    }
    signals.received.then(stop);
    if (options.durationS !== undefined) {
      timers.push(
        setTimeout(() => stop(`--duration ${options.durationS}`), options.durationS * 1000),
      );
    }
    if (options.connections !== undefined) {
      receiver.collector.whenClosed(options.connections).then(() =>
        stop(`--connections ${options.connections}`)
      );
    }
  });
  const result = await receiver.stop().finally(() => signals.dispose());
  if (json) {
    const { summary, connections } = result;
    const text = JSON.stringify(
      {
        summary,
        connections: connections.map(({ samples: _samples, ...record }) => record),
      },
      null,
      1,
    ) + "\n";
    await writeFileAtomic(options.out!, text);
  }
  return { ...result, port: receiver.port, stoppedBy, wrote: options.out ?? null };
}

/** Writes `text` to `path` through a temporary name, renamed once fully written. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(temp, text);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
