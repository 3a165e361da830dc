import { assertEquals, assertOk, assertRejects } from "./_assert.ts";
import { type CasePlan, measureCase } from "../ipcbench/measure.ts";
import { skipReason } from "../ipcbench/bench.ts";
import { RUN_EPOCH } from "../ipcbench/message.ts";
import { allowedCpus, PINS } from "../ipcbench/system.ts";
import { TRANSPORT_NAMES, TRANSPORTS } from "../ipcbench/transports.ts";
import { liveChildPids } from "../shared/runtime.ts";
import { sleep } from "../shared/clock.ts";

const entry = new URL("../ipcbench/main.ts", import.meta.url);
const cpus = allowedCpus();

function plan(overrides: Partial<CasePlan>): CasePlan {
  return {
    transport: "tcp",
    size: 64,
    roundTrips: 40,
    warmup: 5,
    runs: 2,
    pin: "none",
    timeoutMs: 5000,
    entry,
    ...overrides,
  };
}

async function noChildrenLeft(): Promise<void> {
  for (let i = 0; i < 50 && liveChildPids().length > 0; i++) await sleep(50);
  assertEquals(liveChildPids(), []);
}

Deno.test("ipcbench: a timed warm-up runs past its count, and the echo side still finds the runs", async () => {
  for (const transport of ["channel-shm", "channel-sab", "tcp"] as const) {
    if (skipReason(transport, "none", cpus) !== null) continue;
    const result = await measureCase(plan({ transport, warmupMs: 300 }));
    assertEquals(result.runs.map((run) => run.roundTrips), [40, 40], transport);
    // 300 ms of round trips are far more than the 5 counted ones.
    assertOk(result.echoHandled! > 5 + 2 * 40 + 100, `${transport}: ${result.echoHandled}`);
    // The echo side read its CPU time at both runs' boundaries (counted from RUN_EPOCH).
    for (const run of result.runs) {
      assertOk(Number.isFinite(run.cpuMs.echo), `${transport}: echo CPU ${run.cpuMs.echo}`);
    }
  }
  await noChildrenLeft();
});

for (const pin of PINS) {
  Deno.test(`ipcbench: every transport echoes every counter [--pin ${pin}]`, async () => {
    for (const transport of TRANSPORT_NAMES) {
      if (skipReason(transport, pin, cpus) !== null) continue;
      for (const size of [4, 4096]) {
        const result = await measureCase(plan({ transport, size, pin }));
        const what = `${transport} ${size} B --pin ${pin}`;
        assertEquals(result.runs.map((run) => run.roundTrips), [40, 40], what);
        assertEquals(result.runs.map((run) => run.latencyUs.count), [40, 40], what);
        const passes = transport === "sab-spin" ? 2 : 1;
        assertEquals(
          result.echoHandled,
          TRANSPORTS[transport].kind === "in-process" ? null : 5 + 2 * 40 * passes,
          what,
        );
        assertOk(result.median.roundTripsPerSec > 0, what);
        assertEquals(result.kind, TRANSPORTS[transport].kind);
        if (pin !== "none" && transport !== "async") {
          // The requested placement, as seen by both sides (or as requested without /proc).
          const expected = pin === "same" ? [cpus[0], cpus[0]] : [cpus[0], cpus[1]];
          assertEquals(result.placement.requested, {
            measuring: String(expected[0]),
            echo: String(expected[1]),
          }, what);
          assertEquals(result.placement.measuring.allowed, String(expected[0]), what);
          assertEquals(result.placement.echo?.allowed, String(expected[1]), what);
        }
      }
    }
    await noChildrenLeft();
  });
}

Deno.test("ipcbench: the measuring thread's CPUs are restored after a pinned case", async () => {
  const before = allowedCpus();
  await measureCase(plan({ transport: "atomics-wait", pin: "same" }));
  assertEquals(allowedCpus(), before);
});

for (
  const transport of [
    "postmessage",
    "pipes",
    "tcp",
    "udp",
    "atomics-wait",
    "messagechannel",
    "channel-unix",
    "channel-shm",
    "shm-futex",
    "shm-eventfd",
    "mq",
  ] as const
) {
  Deno.test(`ipcbench: a wrong echoed value fails the run [${transport}]`, async () => {
    await assertRejects(
      () => measureCase(plan({ transport, corruptAfter: 12 })),
      Error,
      // Five warm-up round trips, then the runs count from RUN_EPOCH: the 13th
      // message is the 8th timed one.
      `round trip 13: sent counter ${RUN_EPOCH + 14}, expected ${RUN_EPOCH + 15} back, got ${
        RUN_EPOCH + 16
      }`,
    );
    await noChildrenLeft();
  });
}

for (
  const transport of [
    "pipes",
    "channel-unix",
    "channel-shm",
    "tcp",
    "unix",
    "fifo",
    "udp",
    "postmessage",
    "waitasync",
    "shm-futex",
    "shm-eventfd",
    "shm-spin",
    "mq",
  ] as const
) {
  Deno.test(`ipcbench: a peer that dies mid-run ends the run clearly [${transport}]`, async () => {
    const error = await assertRejects(
      () => measureCase(plan({ transport, dieAfter: 20, timeoutMs: 2000 })),
      Error,
    );
    const where = TRANSPORTS[transport].kind === "process" ? "child process" : "thread worker";
    assertOk(error.message.includes(where), error.message);
    await noChildrenLeft();
  });
}

Deno.test("ipcbench: a blocked SharedArrayBuffer wait times out when the peer died", async () => {
  const started = performance.now();
  const error = await assertRejects(
    () => measureCase(plan({ transport: "atomics-wait", dieAfter: 20, timeoutMs: 500 })),
    Error,
  );
  assertOk(/thread worker|500 ms/.test(error.message), error.message);
  assertOk(performance.now() - started < 5000);
});
