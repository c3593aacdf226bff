/**
 * The package layout's rules, read from every package.json, tsconfig and import in the tree:
 *
 * - the gateway and the muxer are deployables: only apps (`apps/*`) import or depend on them;
 * - a package's `internal/` is its own: no other package imports it, by name or by a relative path
 *   (and no file reaches into another package by a relative path at all);
 * - every package closes `./internal/*` in its exports.
 *
 * See docs/architecture.md ("Packages").
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const posix = (path: string) => path.split(sep).join("/")
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const SELF = posix(relative(ROOT, fileURLToPath(import.meta.url)))
/** Packages only apps may use. */
const DEPLOYABLES = ["@capture/gateway", "@capture/muxer"]
const SOURCE = /\.(ts|mts|cts|tsx|js|mjs|cjs)$/
const SKIPPED_DIRECTORIES = new Set(["node_modules", "dist", "build", "results", ".turbo"])

interface WorkspacePackage {
  readonly name: string
  /** Relative to the repository root, `/`-separated: `packages/media`, `apps/cli`, `bench`. */
  readonly dir: string
  readonly isApp: boolean
  readonly manifest: {
    readonly exports?: Record<string, unknown>
    readonly [field: string]: unknown
  }
}

const workspacePackages = (): WorkspacePackage[] =>
  [
    ...readdirSync(join(ROOT, "packages")).map((d) => `packages/${d}`),
    ...readdirSync(join(ROOT, "apps")).map((d) => `apps/${d}`),
    "bench",
  ].flatMap((dir) => {
    let manifest: WorkspacePackage["manifest"]
    try {
      manifest = JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8"))
    } catch {
      return []
    }
    return [{ name: String(manifest.name), dir, isApp: dir.startsWith("apps/"), manifest }]
  })

const filesUnder = (dir: string, keep: (name: string) => boolean): string[] => {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  return names.flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return SKIPPED_DIRECTORIES.has(name) ? [] : filesUnder(path, keep)
    return keep(name) ? [path] : []
  })
}

/** An import in a file: what it names and on which line. */
interface ImportOf {
  readonly specifier: string
  readonly line: number
}

/**
 * The modules `source` imports or re-exports (static, side-effect, dynamic `import()` and
 * `require`). Comments are dropped first, so an example in a doc comment is not an import.
 */
const importsOf = (source: string): ImportOf[] => {
  const blank = (text: string) => text.replace(/[^\n]/g, " ")
  const code = source.replace(/\/\*[\s\S]*?\*\//g, blank).replace(/^\s*\/\/.*$/gm, blank)
  const patterns = [
    /\b(?:import|export)\b[^;'"=()]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
  ]
  return patterns.flatMap((pattern) =>
    [...code.matchAll(pattern)].map((match) => ({
      specifier: match[1] as string,
      line: code.slice(0, match.index).split("\n").length,
    })),
  )
}

/** A broken rule, with where. */
interface Violation {
  readonly where: string
  readonly rule: string
}

const ownerOf = (packages: ReadonlyArray<WorkspacePackage>, file: string): WorkspacePackage | undefined =>
  packages.find((p) => file === p.dir || file.startsWith(`${p.dir}/`))

/** What an import in `file` (repository-relative) breaks. */
const importViolations = (
  packages: ReadonlyArray<WorkspacePackage>,
  file: string,
  imported: ImportOf,
): Violation[] => {
  const owner = ownerOf(packages, file)
  const where = `${file}:${imported.line} imports "${imported.specifier}"`
  const out: Violation[] = []
  const { specifier } = imported
  if (specifier.startsWith(".")) {
    const target = posix(relative(ROOT, resolve(ROOT, dirname(file), specifier)))
    const targetOwner = ownerOf(packages, target)
    if (targetOwner !== undefined && targetOwner.dir !== owner?.dir) {
      out.push({
        where,
        rule: target.split("/").includes("internal")
          ? `reaches into ${targetOwner.name}'s internal/`
          : `reaches into ${targetOwner.name} by a relative path; import it by name`,
      })
    }
    return out
  }
  const named = packages.find((p) => specifier === p.name || specifier.startsWith(`${p.name}/`))
  if (named === undefined || named.dir === owner?.dir) return out
  if (specifier.slice(named.name.length).split("/").includes("internal")) {
    out.push({ where, rule: `imports ${named.name}'s internal/` })
  }
  if (DEPLOYABLES.includes(named.name) && owner?.isApp !== true) {
    out.push({ where, rule: `imports ${named.name}, which only apps may use` })
  }
  return out
}

/** What a package's manifest and tsconfig files break. */
const manifestViolations = (
  pkg: WorkspacePackage,
  tsconfigs: ReadonlyArray<{ readonly file: string; readonly text: string }>,
): Violation[] => {
  const out: Violation[] = []
  for (const field of ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"]) {
    const deps = (pkg.manifest[field] ?? {}) as Record<string, string>
    for (const name of Object.keys(deps)) {
      if (DEPLOYABLES.includes(name) && name !== pkg.name && !pkg.isApp) {
        out.push({
          where: `${pkg.dir}/package.json ${field}`,
          rule: `depends on ${name}, which only apps may use`,
        })
      }
    }
  }
  if (pkg.dir !== "bench" && pkg.manifest.exports?.["./internal/*"] !== null) {
    out.push({ where: `${pkg.dir}/package.json exports`, rule: `"./internal/*" must be null` })
  }
  if (!pkg.isApp) {
    for (const { file, text } of tsconfigs) {
      for (const deployable of DEPLOYABLES) {
        const dir = `packages/${deployable.slice("@capture/".length)}`
        if (dir === pkg.dir) continue
        const paths = [...text.matchAll(/"path"\s*:\s*"([^"]+)"/g)].map((m) =>
          posix(relative(ROOT, resolve(ROOT, dirname(file), m[1] as string))),
        )
        if (paths.some((p) => p === dir || p.startsWith(`${dir}/`))) {
          out.push({ where: `${file} references`, rule: `references ${deployable}, which only apps may use` })
        }
      }
    }
  }
  return out
}

const packages = workspacePackages()

describe("the package layout", () => {
  it("finds every workspace package", () => {
    const names = packages.map((p) => p.name)
    for (const name of [
      "@capture/cli",
      "@capture/gateway",
      "@capture/jetstream",
      "@capture/media",
      "@capture/muxer",
    ])
      expect(names).toContain(name)
  })

  it("keeps the gateway and the muxer to apps, and every package's internal/ to itself", () => {
    const violations = packages.flatMap((pkg) => {
      const files = filesUnder(join(ROOT, pkg.dir), (name) => SOURCE.test(name))
        .map((f) => posix(relative(ROOT, f)))
        // Its own examples of broken imports (below) are strings, not imports.
        .filter((f) => f !== SELF)
      const tsconfigs = filesUnder(join(ROOT, pkg.dir), (name) => /^tsconfig.*\.json$/.test(name)).map(
        (f) => ({
          file: posix(relative(ROOT, f)),
          text: readFileSync(f, "utf8"),
        }),
      )
      return [
        ...manifestViolations(pkg, tsconfigs),
        ...files.flatMap((file) =>
          importsOf(readFileSync(join(ROOT, file), "utf8")).flatMap((i) =>
            importViolations(packages, file, i),
          ),
        ),
      ]
    })
    expect(violations.map((v) => `${v.where}: ${v.rule}`)).toEqual([])
  })
})

describe("the layout check", () => {
  const find = (file: string, source: string) =>
    importsOf(source).flatMap((i) => importViolations(packages, file, i).map((v) => v.rule))

  it("reads static, side-effect, dynamic and require imports, and skips comments", () => {
    const source = [
      'import { a } from "one"',
      'import type { B } from "two"',
      'export * from "three"',
      'import "four"',
      'const five = await import("five")',
      'const six = require("six")',
      'export * as eight from "eight"',
      '/** import { x } from "in-a-doc" */',
      '// import { y } from "in-a-comment"',
      'import {\n  c,\n  d,\n} from "seven"',
    ].join("\n")
    expect(
      importsOf(source)
        .map((i) => i.specifier)
        .sort(),
    ).toEqual(["eight", "five", "four", "one", "seven", "six", "three", "two"].sort())
    expect(importsOf('\n\nimport x from "later"')[0]?.line).toBe(3)
  })

  it("refuses the gateway or the muxer outside apps, tests included", () => {
    expect(find("packages/media/src/Some.ts", 'import { Muxer } from "@capture/muxer"')).toEqual([
      "imports @capture/muxer, which only apps may use",
    ])
    expect(
      find("packages/session-actor/test/Some.test.ts", 'import { x } from "@capture/gateway/Gateway"'),
    ).toEqual(["imports @capture/gateway, which only apps may use"])
    expect(find("bench/some.ts", 'await import("@capture/gateway")')).toEqual([
      "imports @capture/gateway, which only apps may use",
    ])
    expect(find("apps/cli/src/Some.ts", 'import { Muxer } from "@capture/muxer"')).toEqual([])
    expect(find("packages/muxer/test/child/muxer.mjs", 'import { Muxer } from "@capture/muxer"')).toEqual([])
  })

  it("refuses another package's internal/, by name or by path, and any path into another package", () => {
    expect(
      find("packages/gateway/src/Some.ts", 'import { x } from "@capture/session-actor/internal/thing.js"'),
    ).toEqual(["imports @capture/session-actor's internal/"])
    expect(
      find("packages/gateway/src/Some.ts", 'import { x } from "../../media/src/internal/playlist.js"'),
    ).toEqual(["reaches into @capture/media's internal/"])
    expect(
      find("packages/gateway/src/Some.ts", 'import { x } from "../../media/src/ExportStore.js"'),
    ).toEqual(["reaches into @capture/media by a relative path; import it by name"])
    expect(
      find("packages/media/src/ExportStore.ts", 'import { playlist } from "./internal/playlist.js"'),
    ).toEqual([])
  })

  it("refuses a dependency or a tsconfig reference on the gateway or the muxer outside apps, and open internals", () => {
    const media = packages.find((p) => p.name === "@capture/media") as WorkspacePackage
    const broken: WorkspacePackage = {
      ...media,
      manifest: { ...media.manifest, devDependencies: { "@capture/gateway": "workspace:*" }, exports: {} },
    }
    const tsconfig = {
      file: "packages/media/tsconfig.src.json",
      text: '{ "references": [{ "path": "../muxer/tsconfig.src.json" }] }',
    }
    expect(manifestViolations(broken, [tsconfig]).map((v) => `${v.where}: ${v.rule}`)).toEqual([
      "packages/media/package.json devDependencies: depends on @capture/gateway, which only apps may use",
      'packages/media/package.json exports: "./internal/*" must be null',
      "packages/media/tsconfig.src.json references: references @capture/muxer, which only apps may use",
    ])
    expect(manifestViolations(media, [])).toEqual([])
  })
})
