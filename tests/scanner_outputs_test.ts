/**
 * Results as they come, in a private network namespace: `--jsonl` and `-oG` read
 * back to the `--json` result; Ctrl-C prints and writes partial results and
 * exits 130; `--resume` finishes the scan to the same result as one full scan.
 */
import { assertEquals, assertOk } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import { parseGrepable, parseJsonl } from "../scanner/records.ts";
import { dropSyns, nft, runScanner, scannerArgs, signalAfter } from "./_scanner.ts";

const scanner = runScanner;
const dropBlock = () => dropSyns("1000-1999", "out");

netnsTest(
  import.meta.url,
  "scanner outputs: --jsonl and -oG read back to the --json result, -oA writes all three",
  async () => {
    await dropBlock();
    const listeners = [22, 80, 2500].map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
    const dir = await Deno.makeTempDir();
    try {
      const common = ["127.0.0.1", "-p", "1-1100,2000-2600", "--show", "open,filtered"];
      const json = await scanner([...common, "--timeout", "300", "--json", "-oA", `${dir}/all`]);
      assertEquals(json.code, 0, json.stderr);
      const doc = JSON.parse(json.stdout);
      const want = doc.results.hosts[0];
      assertEquals(want.counts, { open: 3, closed: 1597, filtered: 101 });
      const jsonl = await scanner([...common, "--timeout", "300", "--jsonl", "-oG", `${dir}/g`]);
      assertEquals(jsonl.code, 0, jsonl.stderr);
      const lines = jsonl.stdout.trim().split("\n");
      assertEquals(lines.length, 105); // 3 open + 101 filtered findings, then the summary
      const [fromJsonl] = parseJsonl(jsonl.stdout);
      assertEquals(fromJsonl.ports, want.ports);
      assertEquals(fromJsonl.counts, want.counts);
      assertEquals(fromJsonl.outcomes, want.outcomes);
      const [fromGrep] = parseGrepable(await Deno.readTextFile(`${dir}/g`));
      assertEquals(
        fromGrep.ports.map((p) => [p.port, p.state, p.service]),
        want.ports.map((p: { port: number; state: string; service: string | null }) => [
          p.port,
          p.state,
          p.service,
        ]),
      );
      assertEquals(fromGrep.counts, want.counts);
      // -oA: the same result in all three files.
      const [fromAllGrep] = parseGrepable(await Deno.readTextFile(`${dir}/all.gnmap`));
      assertEquals(fromAllGrep.counts, want.counts);
      const allJson = JSON.parse(await Deno.readTextFile(`${dir}/all.json`));
      assertEquals(allJson.results.hosts[0].outcomes, want.outcomes);
      assertOk((await Deno.readTextFile(`${dir}/all.nmap`)).includes("2500/tcp"));
    } finally {
      for (const listener of listeners) listener.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

netnsTest(
  import.meta.url,
  "scanner outputs: Ctrl-C prints and writes partial results, exits 130; --resume completes them",
  async () => {
    await dropBlock();
    const listeners = [22, 80, 2500].map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
    const dir = await Deno.makeTempDir();
    try {
      // The dropped ports keep the scan busy for 20 s (the adaptive timeout may not shrink
      // below it: loopback answers in microseconds); SIGINT comes once findings flow.
      const child = new Deno.Command(Deno.execPath(), {
        args: scannerArgs([
          "127.0.0.1",
          "-p",
          "1-2600",
          "--timeout",
          "20000",
          "--min-rtt-timeout",
          "20000",
          "--max-rtt-timeout",
          "20000",
          "--jsonl",
          "-oJ",
          `${dir}/partial.json`,
        ]),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // SIGINT once the last open port is out (ports go out in order, between turns
      // of the event loop: every port below it that answers has been decided).
      const text = await signalAfter(child, child.stdout, '"port":2500,');
      assertOk(text.includes('"type":"port"'), text);
      const status = await child.status;
      await child.stderr.cancel();
      assertEquals(status.code, 130);
      const summary = JSON.parse(text.trim().split("\n").at(-1)!);
      assertEquals([summary.type, summary.interrupted], ["summary", true]);
      const partial = JSON.parse(await Deno.readTextFile(`${dir}/partial.json`));
      assertEquals(partial.error, "interrupted: partial results");
      const host = partial.results.hosts[0];
      assertEquals(host.counts.open, 3);
      assertEquals(host.counts.filtered, 0);
      assertOk(
        host.counts.closed >= 1497 && host.counts.closed < 2597,
        JSON.stringify(host.counts),
      );

      // Resume with the filter gone: the undecided ports answer now (closed).
      await nft("delete table inet out\n");
      const resumed = await scanner(["--resume", `${dir}/partial.json`, "--json"]);
      assertEquals(resumed.code, 0, resumed.stderr);
      const done = JSON.parse(resumed.stdout).results.hosts[0];
      assertEquals(done.counts, { open: 3, closed: 2597, filtered: 0 });
      const full = JSON.parse((await scanner(["127.0.0.1", "-p", "1-2600", "--json"])).stdout);
      assertEquals(done.outcomes, full.results.hosts[0].outcomes);
    } finally {
      for (const listener of listeners) listener.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

netnsTest(
  import.meta.url,
  "scanner outputs: --banners reads what open ports say first, bounded, in every output",
  async () => {
    const talker = Deno.listen({ hostname: "127.0.0.1", port: 2222 });
    const quiet = Deno.listen({ hostname: "127.0.0.1", port: 8080 });
    const serve = (async () => {
      for await (const conn of talker) {
        conn.write(new TextEncoder().encode("SSH-2.0-Test_1.0\r\n\x00" + "x".repeat(500)))
          .catch(() => {}).finally(() => setTimeout(() => conn.close(), 2000));
      }
    })();
    const held: Deno.Conn[] = [];
    const hold = (async () => {
      for await (const conn of quiet) held.push(conn);
    })();
    try {
      const common = ["127.0.0.1", "-p", "2222,8080,9000", "--banners", "--banner-bytes", "20"];
      const json = JSON.parse(
        (await scanner([...common, "--banner-timeout", "300", "--json"])).stdout,
      );
      assertEquals(json.results.hosts[0].ports.map((p: { banner: string | null }) => p.banner), [
        "SSH-2.0-Test_1.0\\r\\n\\x00x",
        null,
      ]);
      const grep = await scanner([...common, "--banner-timeout", "300", "--grep"]);
      assertOk(grep.stdout.includes("2222/open/tcp//"), grep.stdout);
      assertOk(grep.stdout.includes("SSH-2.0-Test_1.0\\r\\n\\x00x/"), grep.stdout);
      const jsonl = await scanner([...common, "--banner-timeout", "300", "--jsonl"]);
      const lines = jsonl.stdout.trim().split("\n").map((line) => JSON.parse(line));
      assertEquals(
        lines.filter((l) => l.type === "port").map((l) => [l.port, l.banner]).sort(),
        [[2222, "SSH-2.0-Test_1.0\\r\\n\\x00x"], [8080, null]],
      );
      const table = await scanner([...common, "--banner-timeout", "300"]);
      assertOk(
        /2222\/tcp\s+open\s+\S+\s+syn-ack\s+SSH-2.0-Test_1.0/.test(table.stdout),
        table.stdout,
      );
    } finally {
      talker.close();
      quiet.close();
      for (const conn of held) conn.close();
      await Promise.allSettled([serve, hold]);
    }
  },
);
