import { assertEquals, assertOk } from "./_assert.ts";
import { cpuModel, runLab, validateLabResults, writeLabReport } from "../tools/lab_core.ts";
import { escapeHtml, type LabResults, renderLabHtml } from "../tools/lab_render.ts";
import { validateStudyReport } from "../shared/study.ts";
import { fakeReport } from "./fixtures/lab_fake_study.ts";

const FIXTURE_ROOT = new URL("./fixtures/lab_root/", import.meta.url).pathname;

function fakeResults(): LabResults {
  return {
    tool: "lab",
    version: "0.0.0",
    generatedAt: new Date(0).toISOString(),
    machine: {
      hostname: "h",
      os: "Linux",
      kernel: "6",
      arch: "x86_64",
      cpuModel: "cpu",
      cores: 2,
      memoryBytes: 2 ** 30,
      denoVersion: "2.9.6",
      v8Version: "1",
      cpuPressureBefore: 0,
      cpuPressureAfter: 1.5,
    },
    options: { scale: "smoke", only: ["scanner", "ipcbench"], from: "source", out: "x" },
    studies: [fakeReport("scanner"), fakeReport("ipcbench")],
    failures: [],
    elapsedMs: 5,
  };
}

Deno.test("lab: the fake study report conforms to the StudyReport schema", () => {
  assertEquals(validateStudyReport(fakeReport("scanner")), []);
  const broken = { ...fakeReport("scanner"), findings: [], scale: "huge" };
  assertEquals(validateStudyReport(broken), [
    "scale: expected smoke, quick or full",
    "findings: expected at least one sentence",
  ]);
});

Deno.test("lab: results schema accepts a full report and names what is missing", () => {
  const results = fakeResults();
  assertEquals(validateLabResults(results, ["scanner", "ipcbench"]), []);
  assertEquals(validateLabResults(results, ["scanner", "transfer"]), [
    "studies: transfer is missing",
  ]);
  assertEquals(validateLabResults({ ...results, machine: null }), ["machine: expected an object"]);
});

Deno.test("lab: HTML escapes text and has one section per study", () => {
  const html = renderLabHtml(fakeResults(), [["<svg></svg>"], ["<svg></svg>"]]);
  assertEquals(escapeHtml(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  assertOk(html.includes("scanner: &lt;fake&gt; study &amp; friends"));
  assertEquals(html.match(/<section class="study" id="study-/g)?.length, 2);
  assertOk(!html.includes("<fake>"));
});

Deno.test("lab: runs studies as child processes, keeps reports and records failures", async () => {
  const out = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    const results = await runLab({
      scale: "smoke",
      only: ["scanner", "transfer"],
      from: "source",
      root: FIXTURE_ROOT,
      out,
      onEvent: (e) => {
        if (e.type === "line") lines.push(`${e.study}: ${e.line}`);
      },
    });
    assertEquals(results.studies.map((s) => s.study), ["scanner"]);
    assertEquals(results.failures.map((f) => [f.study, f.error]), [
      ["transfer", "exit code 1: server refused"],
    ]);
    assertEquals(lines, ["scanner: step 1 of 1: measuring", "transfer: step 1 of 1: connecting"]);
    const saved = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    assertEquals(validateLabResults(saved, ["scanner"]), [
      "study transfer failed: exit code 1: server refused",
    ]);
    const md = await Deno.readTextFile(`${out}/README.md`);
    assertOk(md.includes("![time by mode](plots/scanner-1.svg)"));
    assertOk((await Deno.readTextFile(`${out}/plots/scanner-1.svg`)).startsWith("<svg"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

function chromium(): string | null {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // Try the next one.
    }
  }
  return null;
}

const browser = chromium();

Deno.test({
  name: `lab: the HTML report renders in headless Chromium with every section and plot${
    browser ? "" : " (skipped: no chromium; apt-get install chromium)"
  }`,
  ignore: browser === null,
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      await writeLabReport(out, fakeResults());
      const page = `file://${out}/index.html`;
      const flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        `--user-data-dir=${out}/profile`,
      ];
      const dom = await new Deno.Command(browser!, {
        args: [...flags, "--dump-dom", page],
        stdout: "piped",
        stderr: "null",
      }).output();
      const text = new TextDecoder().decode(dom.stdout);
      // The page's own check script ran (no script error) and found every table and plot.
      assertOk(text.includes('data-check="ok"'), text.slice(0, 400));
      assertOk(text.includes('id="study-scanner"'));
      assertOk(text.includes('id="study-ipcbench"'));
      assertEquals(text.match(/<div class="plot"><svg/g)?.length, 2);
      const shot = await new Deno.Command(browser!, {
        args: [...flags, "--window-size=1280,3000", `--screenshot=${out}/shot.png`, page],
        stdout: "null",
        stderr: "null",
      }).output();
      assertEquals(shot.code, 0);
      const png = await Deno.readFile(`${out}/shot.png`);
      assertEquals([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
      assertOk(png.length > 10_000, `screenshot is only ${png.length} bytes`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("lab: CPU name from /proc/cpuinfo, with or without a model name", () => {
  assertEquals(cpuModel("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"), "AMD EPYC 7B13");
  assertEquals(
    cpuModel("vendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n"),
    "AuthenticAMD family 26 model 2",
  );
  assertEquals(cpuModel(""), "unknown CPU");
});
