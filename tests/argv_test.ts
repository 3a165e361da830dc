import { assertEquals } from "./_assert.ts";
import { intInRange, splitPlainArgs } from "../shared/argv.ts";

Deno.test("splitPlainArgs: words and known options; anything else is for the full parser", () => {
  assertEquals(splitPlainArgs(["a", "--port", "9", "b", "--host=x"], ["--port", "--host"]), {
    words: ["a", "b"],
    options: new Map([["--port", "9"], ["--host", "x"]]),
  });
  assertEquals(splitPlainArgs(["a", "--json"], ["--port"]), null);
  assertEquals(splitPlainArgs(["a", "--port"], ["--port"]), null);
  assertEquals(splitPlainArgs(["a", "--port="], ["--port"]), null);
  assertEquals(intInRange("65535", 1, 65535), 65535);
  assertEquals([intInRange("0", 1, 9), intInRange("-1", 1, 9), intInRange(undefined, 1, 9)], [
    null,
    null,
    null,
  ]);
});
