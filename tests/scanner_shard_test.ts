/**
 * Which probes a scan runs: shards of the seeded order are disjoint and cover
 * every probe; `scanner merge` of 4 shards in a namespace equals one full scan;
 * --top-ports, --exclude.
 */
import { assertEquals, assertOk, assertThrows } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import {
  excludeSet,
  parseShard,
  rankNmapServices,
  selectProbes,
  SHIPPED_TOP_PORTS,
  topPorts,
  withoutExcluded,
} from "../scanner/selection.ts";
import { parseTargetList } from "../scanner/targets.ts";
import { compressPorts } from "../scanner/records.ts";
import { mergeFiles } from "../scanner/merge_command.ts";
import { dropSyns, runScanner } from "./_scanner.ts";

Deno.test("scanner shards: disjoint, complete, the same for the same seed", () => {
  const ports = [1, 2, 3, 80, 443, 8080, 9000];
  const all = selectProbes(3, ports, { seed: 7 });
  assertEquals(all.length, 21);
  assertEquals(selectProbes(3, ports, { seed: 7 }), all);
  assertOk(JSON.stringify(all) !== JSON.stringify(selectProbes(3, ports)), "seeded order differs");
  const shards = [0, 1, 2, 3].map((index) =>
    selectProbes(3, ports, { seed: 7, shard: { index, count: 4 } })
  );
  assertEquals(shards.map((s) => s.length), [6, 5, 5, 5]);
  const key = (p: { host: number; port: number }) => `${p.host}:${p.port}`;
  assertEquals(shards.flat().map(key).sort(), all.map(key).sort());
  assertEquals(parseShard("3/4"), { index: 3, count: 4 });
  for (const bad of ["4/4", "1", "-1/4", "a/b", "0/0"]) {
    assertThrows(() => parseShard(bad), Error, "Invalid --shard");
  }
});

Deno.test("scanner selection: top ports from nmap-services or the shipped list; exclusions", async () => {
  const services =
    "# comment\nhttp\t80/tcp\t0.48\nssh\t22/tcp\t0.18\ndns\t53/udp\t0.9\ntelnet\t23/tcp\t0.22\n";
  assertEquals(rankNmapServices(services), [80, 23, 22]);
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, services);
  assertEquals(topPorts(2, file), { ports: [23, 80], source: "nmap-services" });
  assertThrows(() => topPorts(4, file), Error, "ranks only 3 ports");
  await Deno.remove(file);
  const shipped = topPorts(10, "/nonexistent/nmap-services");
  assertEquals(shipped.source, "shipped list");
  assertEquals(
    shipped.ports,
    SHIPPED_TOP_PORTS.split(",").slice(0, 10).map(Number).sort((a, b) => a - b),
  );
  assertEquals(SHIPPED_TOP_PORTS.split(",").length, 1000);
  const targets = ["10.0.0.1", "10.0.0.2", "10.0.1.9", "::1"].map((address) => ({
    target: address,
    address,
    family: (address.includes(":") ? 6 : 4) as 4 | 6,
  }));
  const exclude = excludeSet(parseTargetList(["10.0.0.0/31,::1"]), []);
  assertEquals(withoutExcluded(targets, exclude).map((t) => t.address), ["10.0.0.2", "10.0.1.9"]);
  assertEquals(compressPorts([1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
});

netnsTest(
  import.meta.url,
  "scanner shards: 4 shards in a namespace merge to one full scan",
  async () => {
    await dropSyns("700, 1900-1902", "shard");
    const listeners = [22, 80, 1500].map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
    const dir = await Deno.makeTempDir();
    try {
      const run = runScanner;
      const common = [
        "127.0.0.1,::1",
        "-p",
        "1-2000",
        "--timeout",
        "300",
        "--show",
        "open,filtered",
      ];
      const full = await run([...common, "-oJ", `${dir}/full.json`, "--json"]);
      assertEquals(full.code, 0, full.stderr);
      for (let i = 0; i < 4; i++) {
        const shard = await run([...common, "--shard", `${i}/4`, "-oJ", `${dir}/shard${i}.json`]);
        assertEquals(shard.code, 0, shard.stderr);
      }
      const shards = [0, 1, 2, 3].map((i) => `${dir}/shard${i}.json`);
      const sizes = await Promise.all(
        shards.map(async (path) => JSON.parse(await Deno.readTextFile(path)).results.probes),
      );
      assertEquals(sizes.reduce((a, b) => a + b, 0), 4000);
      const merged = await run(["merge", ...shards, "--show", "open,filtered", "--json"]);
      assertEquals(merged.code, 0, merged.stderr);
      const want = JSON.parse(full.stdout).results.hosts;
      const got = JSON.parse(merged.stdout).results.hosts;
      assertEquals(got, want);
      assertEquals(want[0].counts, { open: 3, closed: 1993, filtered: 4 });
      assertEquals(want[1].counts, { open: 0, closed: 1996, filtered: 4 });
      assertEquals(
        (await mergeFiles(shards)).hosts.map((h) => h.counts),
        want.map((h: { counts: unknown }) => h.counts),
      );
      const missing = await mergeFiles([`${dir}/missing.json`]).then(() => "", (e) => String(e));
      assertOk(missing.includes("no such file"), missing);
    } finally {
      for (const listener of listeners) listener.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
