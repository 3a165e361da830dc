import { assertEquals } from "./_assert.ts";
import { parsePlainCall } from "../taskserver/fast_call.ts";

Deno.test("taskserver call fast path: plain calls parse, everything else goes to the full CLI", () => {
  assertEquals(parsePlainCall(["call", "reverse", "Benchmark", "Test"]), {
    op: "reverse",
    payload: "Benchmark Test",
    host: "127.0.0.1",
    port: 65432,
    timeoutMs: 30_000,
  });
  assertEquals(
    parsePlainCall(["call", "2", "1+1", "--host", "::1", "--port=9", "--timeout", "5"]),
    {
      op: "eval",
      payload: "1+1",
      host: "::1",
      port: 9,
      timeoutMs: 5,
    },
  );
  // The full command line handles options it does not know, bad values and help.
  for (
    const args of [
      ["call", "reverse", "x", "--json"],
      ["call", "reverse", "x", "--repeat", "3"],
      ["call", "reverse", "x", "--port", "0"],
      ["call", "reverse", "x", "--port", "70000"],
      ["call", "reverse", "x", "--timeout", "-1"],
      ["call", "bogus", "x"],
      ["call", "reverse"],
      ["call", "--help"],
      ["serve"],
      [],
    ]
  ) {
    assertEquals(parsePlainCall(args), null, args.join(" "));
  }
});
