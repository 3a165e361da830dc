/**
 * Explicit registries: what a program's workers and children can run, declared
 * in one module per tool (`<tool>/registry.ts`) instead of side effects spread
 * over the modules the entry happens to import.
 *
 * ```ts
 * // scanner/registry.ts
 * export const registry = defineRegistry({
 *   tasks: { "scanner.probe": probe },
 *   handlers: {},
 *   services: {},
 *   errors: [LabError],
 * });
 * // scanner/main.ts: the worker and child entry stays light
 * if (import.meta.main && !serveRegistry(registry)) { ...load the command line... }
 * // anywhere: a typo or a task not in the registry is a type error
 * runTasks(taskOf(registry, "scanner.probe"), inputs, { mode });
 * serve({ handler: handlerOf(registry, "taskserver.tasks"), ... });
 * ```
 *
 * The runtime finds entries by name inside workers and children; a registry
 * puts every entry there when its module loads, and the typed look-ups
 * ({@linkcode taskOf}, {@linkcode handlerOf}, {@linkcode serviceOf}) only accept
 * names the registry has. `defineTask`, `defineService` and
 * `defineConnectionHandler` keep working (a registry calls them).
 *
 * @module
 */
import { defineTask, type Task, type TaskFn } from "./runner.ts";
import { defineService, enterRole, type Service } from "./runtime.ts";
import { type ConnectionHandler, defineConnectionHandler } from "./server.ts";
import { registerErrorClass } from "./errors.ts";

/** What a program's workers and children can run. */
export interface Registry {
  // deno-lint-ignore no-explicit-any
  tasks?: Record<string, TaskFn<any, any>>;
  services?: Record<string, Service>;
  // deno-lint-ignore no-explicit-any
  handlers?: Record<string, ConnectionHandler<any>>;
  /** Error classes that keep their class when thrown across a worker or child. */
  // deno-lint-ignore no-explicit-any
  errors?: (abstract new (...args: any[]) => Error)[];
}

type TasksOf<R extends Registry> = NonNullable<R["tasks"]>;
type HandlersOf<R extends Registry> = NonNullable<R["handlers"]>;
type ServicesOf<R extends Registry> = NonNullable<R["services"]>;

/** Input and output of a task function. */
type TaskInput<F> = F extends TaskFn<infer I, unknown> ? I : never;
// deno-lint-ignore no-explicit-any
type TaskOutput<F> = F extends TaskFn<any, infer O> ? O : never;

/** A name of a registry's connection handler, for `serve({ handler })`. */
export type HandlerName<R extends Registry> = keyof HandlersOf<R> & string;

/**
 * Declares a registry: registers every entry with the runtime (so workers and
 * children that load this module know them) and returns it unchanged, typed.
 */
export function defineRegistry<const R extends Registry>(registry: R): R {
  for (const [name, fn] of Object.entries(registry.tasks ?? {})) defineTask(name, fn);
  for (const [name, service] of Object.entries(registry.services ?? {})) {
    defineService(name, service);
  }
  for (const [name, handler] of Object.entries(registry.handlers ?? {})) {
    defineConnectionHandler(name, handler);
  }
  for (const type of registry.errors ?? []) registerErrorClass(type);
  return registry;
}

/**
 * Serves the parent when this isolate is a worker or child of a program whose
 * entries are in `registry` (see `enterRole`): returns `true` in that role,
 * `false` for a normal start, when the command line should run.
 */
export function serveRegistry(registry: Registry): boolean {
  void registry; // Loading the registry's module registered it; taking it here makes that explicit.
  return enterRole();
}

/** A registry's task, typed by its function, for `runTasks` and `runAll`. */
export function taskOf<R extends Registry, K extends keyof TasksOf<R> & string>(
  registry: R,
  name: K,
): Task<TaskInput<TasksOf<R>[K]>, Awaited<TaskOutput<TasksOf<R>[K]>>> {
  const fn = registry.tasks?.[name];
  if (!fn) throw new Error(`no task named '${name}' in this registry`);
  return { name, fn } as Task<TaskInput<TasksOf<R>[K]>, Awaited<TaskOutput<TasksOf<R>[K]>>>;
}

/** A registry's connection handler name, for `serve({ handler })`. */
export function handlerOf<R extends Registry, K extends HandlerName<R>>(registry: R, name: K): K {
  if (!registry.handlers?.[name]) throw new Error(`no connection handler named '${name}'`);
  return name;
}

/** A registry's service name, for `spawn(kind, { service })`. */
export function serviceOf<R extends Registry, K extends keyof ServicesOf<R> & string>(
  registry: R,
  name: K,
): K {
  if (!registry.services?.[name]) throw new Error(`no service named '${name}'`);
  return name;
}
