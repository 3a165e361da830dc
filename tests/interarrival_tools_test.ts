import { assertEquals, assertOk } from "./_assert.ts";
import { runTool } from "./_command.ts";
import { announcedPort, loopbackReceiver, main as mainUrl } from "./_interarrival.ts";

Deno.test("interarrival client --flows: each script line is a flow with its own destination, protocol and start", async () => {
  const udp = await loopbackReceiver({ protocol: "udp" });
  const tcp = await loopbackReceiver();
  const script = await Deno.makeTempFile({ suffix: ".flows" });
  try {
    await Deno.writeTextFile(
      script,
      [
        "# flow 1: UDP, 500 messages/s, 1000-byte messages, 0.4 s",
        `-P ${udp.port} --protocol udp -C 500 --size-dist constant --size-param 1000 -t 0.4`,
        "# flow 2: TCP to the other server, 20 messages, starting 0.3 s later",
        `-P ${tcp.port} -d c -p 100 -n 19 --delay 0.3`,
      ].join("\n"),
    );
    const result = await runTool(
      "interarrival",
      ["client", "--flows", script].concat(
        "-s 127.0.0.1 --seed 4 --json".split(" "),
      ),
    );
    assertEquals(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assertEquals(doc.error, null);
    assertEquals(
      doc.results.perWorker.map((w: { protocol: string; messages: number }) => [
        w.protocol,
        w.messages,
      ]),
      [["udp", 200], ["tcp", 20]],
    );
    await tcp.collector.whenClosed(1);
    for (let i = 0; i < 200 && udp.collector.messages < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    await Deno.remove(script);
    const u = (await udp.stop()).summary;
    const t = (await tcp.stop()).summary;
    assertEquals(u.flows.map((f) => [f.flow, f.messages, f.bytes, f.lost]), [[1, 200, 200_000, 0]]);
    assertEquals(t.flows.map((f) => [f.flow, f.messages, f.bytes, f.lost]), [[2, 20, 20 * 64, 0]]);
  }
});

Deno.test("interarrival client --flows: a bad line is a usage error naming the line", async () => {
  const script = await Deno.makeTempFile({ suffix: ".flows" });
  try {
    await Deno.writeTextFile(script, "-P 9000\n-P 9001 --protocol quic\n");
    const result = await runTool("interarrival", ["client", "--flows", script]);
    assertEquals(result.code, 2);
    assertOk(result.stderr.includes("flow script line 2: --protocol 'quic'"), result.stderr);
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("interarrival --json: a failed run prints one document with the error", async () => {
  const result = await runTool("interarrival", [
    "client",
    "-s",
    "127.0.0.1",
    "-P",
    "9",
    "-n",
    "1",
    "--json",
  ]);
  assertEquals(result.code, 1);
  const doc = JSON.parse(result.stdout);
  assertEquals(doc.results, null);
  assertEquals(doc.error, "Cannot connect to 127.0.0.1:9: connection refused");
});

Deno.test("interarrival decode: table, CSV, JSON and SVG plots from a log", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = `${dir}/run.csv`;
    const lines = [
      "kind,connection,sequence,remote,time_epoch_ms,interarrival_ms,bytes,flow,flow_sequence,sent_epoch_ms,delay_ms",
      "connection,1,0,127.0.0.1:5000,999.000,,,,,,",
    ];
    // Flow 1 on connection 1: 10 messages/s for 3 s, 4 ms delay; sequence 12 lost.
    for (let s = 0; s < 30; s++) {
      if (s === 12) continue;
      const sent = 1000 + s * 100;
      lines.push(`data,1,${s + 1},127.0.0.1:5000,${sent + 4}.000,,500,1,${s},${sent}.000,4.000`);
    }
    await Deno.writeTextFile(log, lines.join("\n") + "\n");
    const json = await runTool("interarrival", ["decode", log, "--interval", "1s", "--json"]);
    assertEquals(json.code, 0, json.stderr);
    const result = JSON.parse(json.stdout).results;
    assertEquals(
      result.rows.map((
        r: Record<string, number>,
      ) => [r.packets, r.bitrateBps, r.delayMeanMs, r.jitterMs, r.lost]),
      [[10, 40_000, 4, 0, 0], [9, 36_000, 4, 0, 1], [10, 40_000, 4, 0, 0]],
    );
    const csv = await runTool("interarrival", ["decode", log, "--interval", "1500ms", "--csv"]);
    assertEquals(csv.stdout.trim().split("\n").length, 3);
    assertOk(csv.stdout.startsWith("start (s),packets,bytes,bitrate (bit/s)"));
    const out = await runTool("interarrival", ["decode", log, "--out", `${dir}/report`, "-q"]);
    assertEquals(out.code, 0, out.stderr);
    const svgs = [...Deno.readDirSync(`${dir}/report`)].filter((e) => e.name.endsWith(".svg"));
    assertEquals(svgs.length, 5);
    const missing = await runTool("interarrival", ["decode", `${dir}/none.csv`]);
    assertEquals(missing.code, 1);
    assertOk(missing.stderr.includes(`Cannot read the log ${dir}/none.csv`), missing.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

Deno.test("interarrival serve: memory stays bounded however many messages arrive (issue 13, item 8)", async () => {
  const main = mainUrl.pathname;
  const samples = await Deno.makeTempFile({ suffix: ".csv" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      main,
      "serve",
      "-a",
      "127.0.0.1",
      "-p",
      "0",
      "--json",
      "--out",
      samples,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const megabyte = new Uint8Array(1 << 20).fill(0x0a); // 1 MiB of bare newlines: 1,048,576 messages
  const rss: number[] = [];
  try {
    const port = await announcedPort(reader, child, 30_000);
    for (let round = 0; round < 4; round++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.read(new Uint8Array(64)); // the greeting
      await conn.write(megabyte);
      conn.close();
      // Wait until the server has counted this round: its log (a row of at least 50
      // bytes per message) has grown past it and stopped growing.
      let size = -1;
      for (let i = 0; i < 1200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        const now = Deno.statSync(`${samples}.tmp-${child.pid}`).size;
        if (now === size && now > (round + 1) * 50 * (1 << 20)) break;
        size = now;
      }
      rss.push(rssKiB(child.pid));
    }
    child.kill("SIGTERM");
    assertEquals((await child.status).code, 143); // stopped by SIGTERM, after writing everything
  } finally {
    await reader.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
  const doc = JSON.parse(await stdout);
  assertEquals(doc.results.messages, 4 * (1 << 20));
  const rows = (await Deno.readTextFile(samples)).split("\n").length;
  await Deno.remove(samples);
  assertEquals(rows, 1 + 4 + 4 * (1 << 20) + 1);
  // After the first round warms up, three more million messages add < 32 MB
  // (the study-era server kept ~245 bytes each: +770 MB).
  const growth = (rss[3] - rss[0]) / 1024;
  assertOk(
    growth < 32,
    `RSS grew ${growth.toFixed(1)} MB over 3 Mi messages: ${rss.join(", ")} KiB`,
  );
});
