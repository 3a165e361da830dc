import { assertEquals } from "./_assert.ts";

const SHARED = new URL("../shared/", import.meta.url);

/** Relative imports (static, type-only and re-exports) of one shared/ module, by file name. */
function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(new URL(file, SHARED));
  const found = new Set<string>();
  for (const match of text.matchAll(/(?:import|export)[^;]*?from\s+"\.\/([a-z_]+\.ts)"/g)) {
    found.add(match[1]);
  }
  return [...found];
}

Deno.test("shared/ has no import cycles (type-only imports included)", () => {
  const files = [...Deno.readDirSync(SHARED)].map((entry) => entry.name)
    .filter((name) => name.endsWith(".ts")).sort();
  const graph = new Map(files.map((file) => [file, importsOf(file)]));
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      cycles.push([...path.slice(path.indexOf(file)), file].join(" → "));
      return;
    }
    state.set(file, "open");
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, "done");
  };
  for (const file of files) visit(file, []);
  assertEquals(cycles, []);
});
