/** Helpers shared by the scanner's tests in a private network namespace. */
import { assertEquals } from "./_assert.ts";
import { capture, type Captured } from "./_command.ts";
import { scan, type ScanOptions, type ScanResult } from "../scanner/scan.ts";

/** The scanner's entry, run as a program. */
export const SCANNER_MAIN = new URL("../scanner/main.ts", import.meta.url).pathname;

/** 127.0.0.1 as a scan target. */
export const LOCALHOST = [{ target: "127.0.0.1", address: "127.0.0.1", family: 4 as const }];

/** The light worker entry the namespace tests start their workers from. */
export const WORKER_ENTRY = new URL("../scanner/worker_entry.ts", import.meta.url);

/** Scans `ports` of 127.0.0.1 (workers from {@linkcode WORKER_ENTRY}). */
export function scanLocalhost(
  ports: number[],
  options: Omit<ScanOptions, "targets" | "ports">,
): Promise<ScanResult> {
  return scan({ targets: LOCALHOST, ports, entry: WORKER_ENTRY, ...options });
}

/** The `deno` arguments that run the scanner with `args` (`run --allow-all --quiet main ...`). */
export function scannerArgs(args: string[]): string[] {
  return ["run", "--allow-all", "--quiet", SCANNER_MAIN, ...args];
}

/** Runs the scanner with `args` and captures its output. */
export function runScanner(args: string[]): Promise<Captured> {
  return capture(Deno.execPath(), scannerArgs(args), { env: { NO_COLOR: "1" } });
}

/**
 * Drops SYNs to `ports` (an nftables set, `100, 2000-2010`) in table `table`
 * (inside the namespace only). SYNs only: replies to connects whose ephemeral
 * source port is one of them still arrive.
 */
export function dropSyns(ports: string, table = "scanner_test"): Promise<void> {
  return nft(
    `add table inet ${table}\nadd chain inet ${table} input { type filter hook input priority 0; }\n` +
      `add rule inet ${table} input tcp dport { ${ports} } tcp flags & (syn | ack) == syn drop\n`,
  );
}

/** Applies an nftables script (inside the namespace only). */
export async function nft(script: string): Promise<void> {
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, script);
  const result = await capture("nft", ["-f", file]);
  await Deno.remove(file);
  assertEquals(result.code, 0, result.stderr);
}

/**
 * Reads a child's stream until `seen` is in the text, sends it `signal`, then
 * reads to the end; returns all the text.
 */
export async function signalAfter(
  child: Deno.ChildProcess,
  stream: ReadableStream<Uint8Array>,
  seen: string,
  signal: Deno.Signal = "SIGINT",
): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let sent = false;
  for (;;) {
    if (!sent && text.includes(seen)) {
      child.kill(signal);
      sent = true;
    }
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}
