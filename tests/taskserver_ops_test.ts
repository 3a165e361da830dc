import { assertEquals, assertOk } from "./_assert.ts";
import {
  EvalError,
  evaluate,
  formatValue,
  parseOperation,
  processRequest,
  reverseText,
  swapCase,
} from "../taskserver/ops.ts";
import { answerLine, DEFAULT_INIT } from "../taskserver/protocol.ts";
import { parseStartSh } from "../taskserver/bench.ts";
import { LineOverflow } from "../shared/codec.ts";

function evalOrError(text: string): string {
  try {
    return evaluate(text);
  } catch (error) {
    assertOk(error instanceof EvalError, `unexpected ${error}`);
    return `Error: ${error.message}`;
  }
}

/** Each expression evaluates to its expected answer (or error). */
function expectAnswers(cases: [string, string][]): void {
  for (const [expression, expected] of cases) {
    assertEquals(evalOrError(expression), expected, expression);
  }
}

Deno.test("swapCase: ASCII, Unicode and characters without case, as Python's str.swapcase", () => {
  assertEquals(swapCase("Hello World 123"), "hELLO wORLD 123");
  assertEquals(swapCase("Ärger über ß"), "äRGER ÜBER SS");
  assertEquals(swapCase("ΑβΓ"), "αΒγ");
  assertEquals(swapCase("😀 x 中文"), "😀 X 中文");
});

Deno.test("reverseText: by grapheme, so emoji families and accents survive", () => {
  assertEquals(reverseText("BenchmarkTestString123"), "321gnirtStseTkramhcneB");
  assertEquals(reverseText("cafe\u0301!"), "!e\u0301fac");
  assertEquals(reverseText("a👨‍👩‍👧b"), "b👨‍👩‍👧a");
  assertEquals(reverseText("🇫🇷🇩🇪"), "🇩🇪🇫🇷");
});

Deno.test("evaluate: Python's results for arithmetic (ints exact, floats as str())", () => {
  const cases: [string, string][] = [
    ["1+2+3", "6"],
    ["7/2", "3.5"],
    ["4/2", "2.0"],
    ["7//2", "3"],
    ["-7//2", "-4"],
    ["-7 % 3", "2"],
    ["7 % -3", "-2"],
    ["2**100", "1267650600228229401496703205376"],
    ["-2**2", "-4"],
    ["2**-1", "0.5"],
    ["2**3**2", "512"],
    ["(1 + 2) * 3", "9"],
    ["0.1 + 0.2", "0.30000000000000004"],
    ["1e-5", "1e-05"],
    ["1e16", "1e+16"],
    ["sqrt(16)", "4.0"],
    ["abs(-3)", "3"],
    ["max(1, 2.5, 2)", "2.5"],
    ["round(2.5)", "2"],
    ["floor(-1.5)", "-2"],
    ["pi", "3.141592653589793"],
    ["1_000 + 1", "1001"],
  ];
  expectAnswers(cases);
  assertEquals(formatValue(-0.5), "-0.5");
});

Deno.test("evaluate: hostile input answers an error at once", () => {
  const started = performance.now();
  const cases: [string, string][] = [
    ["9**9**9**9", "Error: result too large (more than 4096 bits)"],
    ["1/0", "Error: division by zero"],
    ["1 % 0", "Error: division by zero"],
    ["0**-1", "Error: zero cannot be raised to a negative power"],
    ["constructor", "Error: name 'constructor' is not defined"],
    ["__proto__", "Error: name '__proto__' is not defined"],
    ["toString()", "Error: name 'toString' is not defined"],
    ["process.exit()", "Error: invalid character '.' at position 8"],
    ["(".repeat(100_000), "Error: expression longer than 1000 characters"],
    ["(".repeat(200) + "1" + ")".repeat(200), "Error: expression nested deeper than 100 levels"],
    ["-".repeat(500) + "1", "Error: expression nested deeper than 100 levels"],
    ["1e308 * 10", "Error: result too large"],
    ["sqrt(-1)", "Error: math domain error"],
    ["(1", "Error: expected ')' but found end of expression"],
    ["1 +", "Error: unexpected end of expression"],
    ["", "Error: empty expression"],
    ["max()", "Error: max() takes 1 to 64 arguments (0 given)"],
  ];
  expectAnswers(cases);
  assertEquals(
    evalOrError("1+".repeat(1_000_000) + "1"),
    "Error: expression longer than 1000 characters",
  );
  assertOk(performance.now() - started < 2000, "hostile expressions must fail fast");
});

Deno.test("processRequest: choice|payload, and clear errors for bad requests", () => {
  assertEquals(processRequest("1|hello"), "HELLO");
  assertEquals(processRequest("2|1+2+3"), "6");
  assertEquals(processRequest("3|abc|def"), "fed|cba");
  assertEquals(
    processRequest("9|x"),
    "Error: unknown choice '9' (expected 1 change case, 2 evaluate, 3 reverse)",
  );
  assertEquals(
    processRequest("hello"),
    "Error: missing '|' (expected choice|payload, e.g. 3|hello)",
  );
  assertEquals(processRequest("hello", { defaultOp: "reverse" }), "olleh");
  assertEquals(processRequest("3|"), "Error: empty payload");
  assertEquals(processRequest("2|2**"), "Error: unexpected end of expression");
  assertEquals(parseOperation("REV"), "reverse");
  assertEquals(parseOperation("2"), "eval");
  assertEquals(parseOperation("x"), undefined);
});

Deno.test("answerLine: invalid UTF-8 and oversize lines", () => {
  assertEquals(
    answerLine(new Uint8Array([0x31, 0x7c, 0xff, 0xfe]), DEFAULT_INIT),
    "Error: request is not valid UTF-8",
  );
  assertEquals(
    answerLine(new LineOverflow(70_000), DEFAULT_INIT),
    "Error: request longer than 65536 bytes",
  );
  assertEquals(answerLine(new TextEncoder().encode("3|é"), DEFAULT_INIT), "é");
});

Deno.test("parseStartSh: reads the three lines start.sh prints", () => {
  const text = "Total Execution Time: 30.062745 seconds\n" +
    "Average Execution Time per script: 3.006274 seconds\nFailed: 2 of 10\n";
  assertEquals(parseStartSh(text, 10), {
    clients: 10,
    totalS: 30.062745,
    averageS: 3.006274,
    errors: 2,
  });
});
