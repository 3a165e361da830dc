import { assertEquals, assertOk } from "./_assert.ts";
import {
  assertConformance,
  assertEchoed,
  echoThrough,
  pingPongFor,
} from "./fixtures/child_channel_entry.ts";
import { InOrder, jsonExact, sabPort, SabRegion } from "../shared/thread_channel_sab.ts";
import { SHM_PARENT_SHARED } from "../shared/child_channel_shm.ts";

for (const kind of ["sab", "postmessage"] as const) {
  Deno.test(`thread channel [${kind}]: JSON and other values, bytes both ways, in order`, async () => {
    const big = new Uint8Array((2 << 20) + 12345).map((_, i) => (i * 7) % 256);
    const payloads: { data: unknown; bytes?: Uint8Array }[] = [
      { data: { hello: "wörld", list: [1, 2, 3] } },
      { data: null, bytes: new Uint8Array([1, 2, 3]) },
      // Values JSON cannot carry exactly go by postMessage, in order with the rest.
      { data: new Map([["a", 1]]) },
      { data: { missing: undefined, nan: NaN, zero: -0, when: new Date(0), big: 12n } },
      { data: 42, bytes: big },
      ...Array.from({ length: 300 }, (_, n) => ({
        data: n % 3 === 0 ? { n, u: undefined } : n,
        bytes: new Uint8Array([n & 255]),
      })),
    ];
    const result = await echoThrough(`thread:${kind}`, payloads);
    assertEquals(result.kind, kind);
    assertEchoed(result.replies, payloads);
    assertOk(result.replies[2].data instanceof Map, "a Map arrives as a Map");
    const odd = result.replies[3].data as Record<string, unknown>;
    assertOk("missing" in odd && Object.is(odd.zero, -0) && Number.isNaN(odd.nan), "exact values");
    assertEquals(odd.big, 12n);
  });

  // The execution-mode conformance suite, thread mode, over this channel kind.
  Deno.test(`thread channel [${kind}]: the thread-mode conformance suite passes`, async () => {
    await assertConformance("thread", { NETCONC_THREAD_CHANNEL: kind });
  });
}

// A reader that naps synchronously holds its event loop for a bounded time only:
// the echo's 5 ms timer keeps firing through a ping-pong (≥ 1/6 of its rate,
// generous for a loaded machine), on both sides of the thread and child channels.
for (const channel of ["thread:sab", "shm"]) {
  Deno.test(`a napping reader does not starve its isolate's timers [${channel}]`, async () => {
    const { roundTrips, ticks, elapsedMs } = await pingPongFor(channel, 400);
    const expected = elapsedMs / 5;
    console.log(
      `${channel}: ${roundTrips} round trips, ${ticks} of ~${Math.round(expected)} ticks`,
    );
    assertOk(roundTrips > 0, "no round trip");
    assertOk(ticks >= expected / 6, `the echo's timer fired ${ticks} times in ${elapsedMs} ms`);
  });
}

Deno.test("thread channel: which values the rings carry (JSON round trips exactly)", () => {
  const yes = [null, true, "é\ud800", 1.5, [1, [2]], { a: { b: [] } }, Object.create(null)];
  const no = [
    undefined,
    NaN,
    Infinity,
    -0,
    1n,
    new Date(0),
    new Uint8Array(1),
    new Map(),
    { a: undefined },
    [1, , 3],
    { f: () => 1 },
    { [Symbol("s")]: 1 },
    // deno-lint-ignore no-explicit-any
    ((a: any) => (a.extra = 1, a))([1]),
  ];
  assertEquals(yes.map((v) => jsonExact(v)), yes.map(() => true));
  assertEquals(no.map((v) => jsonExact(v)), no.map(() => false));
});

Deno.test("thread channel: numbered messages are handed on in number order", () => {
  const out: string[] = [];
  const order = new InOrder<string>((item) => out.push(item));
  order.push(1, "b");
  order.push(3, "d");
  assertEquals(out, []);
  order.push(0, "a");
  assertEquals(out, ["a", "b"]);
  order.push(2, "c");
  order.push(4, "e");
  assertEquals(out, ["a", "b", "c", "d", "e"]);
});

Deno.test("shm/sab endpoint: children are told while their parent has several channels (then they do not spin)", () => {
  const limits = { maxJson: 1 << 20, maxBinary: 1 << 20 };
  const first = new SabRegion();
  const second = new SabRegion();
  const a = sabPort(first, "parent", limits);
  assertEquals(first.load(SHM_PARENT_SHARED), 0);
  const b = sabPort(second, "parent", limits);
  assertEquals([first.load(SHM_PARENT_SHARED), second.load(SHM_PARENT_SHARED)], [1, 1]);
  b.dispose();
  assertEquals(first.load(SHM_PARENT_SHARED), 0);
  a.dispose();
});
