/**
 * `scanner bench` stopped by SIGINT: it prints one JSON document with what it had
 * measured (the engines row already done), closes its lab, and exits 130. The
 * bench re-runs itself inside a private namespace; the signal goes on to it.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { netnsUnavailableReason } from "./_netns.ts";
import { scannerArgs, signalAfter } from "./_scanner.ts";

const reason = netnsUnavailableReason();

Deno.test({
  name: "scanner bench: SIGINT prints what was measured so far and exits 130",
  ignore: reason !== null,
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: scannerArgs(["bench", "--compare", "nmap", "--targets", "--runs", "1", "--json"]),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    // Once the second engines row starts, the first is measured.
    const log = await signalAfter(
      child,
      child.stderr,
      "engines side by side with nmap: 1024 ports",
    );
    const status = await child.status;
    const text = await stdout;
    assertEquals(status.code, 130, log);
    const doc = JSON.parse(text);
    assertEquals([doc.tool, doc.command, doc.results.interrupted], ["scanner", "bench", true]);
    assertOk(doc.results.engines.length >= 1, text);
    assertEquals(doc.results.engines[0].ports, 100);
    assertEquals(doc.results.engines[0].connectExact, true);
    assertOk(log.includes("interrupted by SIGINT"), log);
  },
});
