/**
 * Runs a test body inside a private network namespace, where the test owns the
 * whole port space and no other program's servers are listening.
 *
 * `netnsTest(import.meta.url, name, fn)` registers a test that re-runs this test
 * file under `unshare -n` (with loopback brought up), filtered to this one test.
 * Inside, `NETCONC_NETNS=1` is set and the body runs for real. Without root, or
 * without `unshare` and `ip`, the test is reported as ignored, with the reason in
 * its name.
 *
 * @module
 */
import { which } from "../shared/peer.ts";

/** True inside the namespace that {@linkcode netnsTest} created. */
export const IN_NETNS: boolean = Deno.env.get("NETCONC_NETNS") === "1";

/** Why namespaced tests cannot run here, or `null` when they can. */
export function netnsUnavailableReason(): string | null {
  if (Deno.uid() !== 0) return "needs root for a private network namespace";
  if (!which("unshare")) return "needs unshare (util-linux)";
  if (!which("ip")) return "needs ip (iproute2)";
  return null;
}

/** Options for {@linkcode netnsTest}. */
export interface NetnsTestOptions {
  /** Milliseconds the namespaced run may take before it is killed (default 120 000). */
  timeout?: number;
}

/** Registers `fn` as a test that runs inside a fresh private network namespace. */
export function netnsTest(
  fileUrl: string,
  name: string,
  fn: () => Promise<void> | void,
  options: NetnsTestOptions = {},
): void {
  if (IN_NETNS) {
    Deno.test(name, fn);
    return;
  }
  const reason = netnsUnavailableReason();
  Deno.test({
    name: reason ? `${name} (skipped: ${reason})` : `${name} [netns]`,
    ignore: reason !== null,
    fn: async () => {
      const file = new URL(fileUrl).pathname;
      const script =
        `ip link set lo up && exec "$0" test --allow-all --unstable-net --no-prompt --filter "$1" "$2"`;
      const child = new Deno.Command("unshare", {
        args: ["-n", "--", "sh", "-c", script, Deno.execPath(), name, file],
        env: { NETCONC_NETNS: "1", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeout ?? 120_000);
      const output = await child.output();
      clearTimeout(timer);
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      if (output.code !== 0) {
        throw new Error(`namespaced run failed (exit ${output.code}):\n${text}`);
      }
      if (!/\| 1 passed/.test(text)) {
        throw new Error(`namespaced run did not run the test:\n${text}`);
      }
    },
  });
}
