/**
 * The process's open-file limit, so a scan can keep its connects in flight
 * below it instead of learning it from `EMFILE` (the runtime itself needs
 * descriptors too, and Deno 2.9.6 panics when one of its own calls meets EMFILE).
 *
 * @module
 */

/**
 * The soft `RLIMIT_NOFILE`, asked of the shell (Deno has no getrlimit and will
 * not read /proc/self without --allow-all); `null` when unknown or unlimited.
 */
export async function openFileLimit(): Promise<number | null> {
  try {
    // Never prompt for it: without --allow-run the EMFILE fallback still keeps results exact.
    if (Deno.permissions.querySync({ name: "run", command: "sh" }).state !== "granted") return null;
    const output = await new Deno.Command("sh", {
      args: ["-c", "ulimit -n"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    const value = Number(new TextDecoder().decode(output.stdout).trim());
    return output.code === 0 && Number.isSafeInteger(value) && value > 0 ? value : null;
  } catch {
    return null;
  }
}

/**
 * Connects each of `isolates` may keep in flight under an open-file limit of
 * `limit`, leaving a reserve for the runtime, workers and stdio.
 */
export function connectsPerIsolate(limit: number, isolates: number): number {
  const reserve = Math.min(Math.floor(limit / 2), 32 + 8 * isolates);
  return Math.max(1, Math.floor((limit - reserve) / isolates));
}

/** Most sockets one FFI engine keeps open, whatever the open-file limit allows. */
export const MAX_FFI_WINDOW = 16384;

/**
 * Most connects one isolate keeps in flight, whatever `--concurrency` asks for.
 * Above ~128 `Deno.connect` calls in flight in one isolate, some stall for longer
 * than the timeout under sustained load: a 65535-port async scan at 256 in flight
 * reported 768-1210 closed ports as filtered here, at 128 none did.
 */
export const MAX_CONNECTS_PER_ISOLATE = 128;

/** How long a probe keeps retrying while the process is out of descriptors or ports. */
export const RESOURCE_RETRY_LIMIT_MS = 30_000;

/** Windows up to this many sockets do not need the open-file limit (any process has them). */
export const FEW_SOCKETS = 8;

/** Default `--min-rtt-timeout` (nmap's). */
export const DEFAULT_MIN_RTT_MS = 100;
/** Default `--max-rtt-timeout` (nmap's). */
export const DEFAULT_MAX_RTT_MS = 10_000;
