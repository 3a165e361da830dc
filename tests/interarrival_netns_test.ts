import { assertEquals, assertOk } from "./_assert.ts";
import { netnsTest } from "./_netns.ts";
import { startReceiver } from "../interarrival/server.ts";
import { runClient } from "../interarrival/client.ts";
import { parseDistribution } from "../interarrival/distributions.ts";
import { SEQUENCE_LOW_OFFSET } from "../interarrival/protocol.ts";
import "../interarrival/main.ts";

const entry = new URL("../interarrival/worker_entry.ts", import.meta.url);

async function nft(script: string): Promise<string> {
  const output = await new Deno.Command("nft", {
    args: ["-f", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const writer = output.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const result = await output.output();
  if (!result.success) throw new Error(`nft failed: ${new TextDecoder().decode(result.stderr)}`);
  return new TextDecoder().decode(result.stdout);
}

const PORT = 9000;
// The low byte of the sequence number: UDP header (8 bytes) + its offset in the message.
const LOW_BYTE_BIT = (8 + SEQUENCE_LOW_OFFSET + 3) * 8;

netnsTest(
  import.meta.url,
  "interarrival udp loss: nftables drops sequence ≡ 42 (mod 256); the report names exactly those",
  async () => {
    await nft(`table inet loss {
  chain input {
    type filter hook input priority 0;
    udp dport ${PORT} @th,${LOW_BYTE_BIT},8 42 counter drop
  }
}
`);
    const receiver = await startReceiver({
      hostname: "127.0.0.1",
      port: PORT,
      mode: "async",
      protocol: "udp",
      entry,
    });
    // 20,000 datagrams/s of 64 bytes for 2 s, from two flows.
    const perFlow = 20_000;
    let client;
    try {
      client = await runClient({
        host: "127.0.0.1",
        port: PORT,
        workers: 2,
        intervals: perFlow - 1,
        dist: parseDistribution("c", [10_000]),
        seed: 1,
        protocol: "udp",
        entry,
      });
      const expected = 2 * perFlow - 2 * Math.ceil((perFlow - 42) / 256);
      for (let i = 0; i < 400 && receiver.collector.messages < expected; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      await receiver.stop();
    }
    const { summary } = await receiver.stop();
    const dropped: [number, number][] = [];
    for (let s = 42; s < perFlow; s += 256) dropped.push([s, s]);
    const counter = await nft("list ruleset");
    const packets = Number(/counter packets (\d+)/.exec(counter)![1]);
    assertEquals(packets, 2 * dropped.length);
    assertEquals(client.overall.messages, 2 * perFlow);
    assertEquals(summary.kernelDrops, 0);
    assertEquals(summary.messages, 2 * perFlow - packets);
    assertEquals([summary.lost, summary.duplicates, summary.reordered], [packets, 0, 0]);
    for (const flow of summary.flows) {
      assertEquals(flow.lostRanges, dropped);
      assertOk(flow.lostRangesComplete);
      assertEquals(flow.highestSequence, perFlow - 1);
    }
  },
  { timeout: 180_000 },
);
