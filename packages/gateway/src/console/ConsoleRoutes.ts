/**
 * The browser side, served from the console package's build (`@capture/console`):
 * - `GET /static/{file…}`: the built files (the player script, the console's script and styles,
 *   hls.js in a hashed chunk cached for good);
 * - `GET /console`, `GET /console/…`: the console page (it signs in with an API key kept in the
 *   tab's sessionStorage, never in a URL, and calls the API like any client);
 * - `GET /`: a browser (`Accept: text/html`) is sent to the console; any other client gets the
 *   JSON 404 every unknown route answers.
 */
import { readFile } from "node:fs/promises"
import { extname, join, normalize } from "node:path"
import { CONSOLE_ASSETS_DIR, CONSOLE_PAGE, STATIC_PREFIX } from "@capture/console"
import { captureError, failureOf, httpStatusOf } from "@capture/protocol"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
}

/** A built file's path inside the assets folder, or undefined for anything that could leave it. */
const assetPath = (file: string): string | undefined => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$/.test(file) || file.includes("..")) return undefined
  const path = normalize(join(CONSOLE_ASSETS_DIR, file))
  return path.startsWith(CONSOLE_ASSETS_DIR) && CONTENT_TYPES[extname(path)] !== undefined ? path : undefined
}

const notFound = (message: string) => {
  const error = captureError("not_found", message)
  return HttpServerResponse.jsonUnsafe(failureOf(error), { status: httpStatusOf(error.error_code) })
}

/** Reads a built file: undefined when it does not exist (the package not built, or no such file). */
const readAsset = (path: string) =>
  Effect.promise(() =>
    readFile(path).then(
      (bytes): Uint8Array | undefined => bytes,
      () => undefined,
    ),
  )

const serveFile = (file: string, cacheControl: string) =>
  Effect.gen(function* () {
    const path = assetPath(file)
    if (path === undefined) return notFound(`no file ${file}`)
    const bytes = yield* readAsset(path)
    if (bytes === undefined) return notFound(`no file ${file} (is @capture/console built?)`)
    return HttpServerResponse.uint8Array(bytes, { contentType: CONTENT_TYPES[extname(path)] ?? "" }).pipe(
      HttpServerResponse.setHeader("cache-control", cacheControl),
    )
  })

// Hashed chunks never change under their name; entries and pages change with each build.
const cacheControlOf = (file: string) =>
  file.startsWith("chunks/") ? "public, max-age=31536000, immutable" : "no-cache"

const consolePage = serveFile(CONSOLE_PAGE, "no-cache")

export const consoleRoutes = Layer.mergeAll(
  HttpRouter.add(
    "GET",
    `${STATIC_PREFIX}*`,
    Effect.gen(function* () {
      const params = yield* HttpRouter.params
      const file = params["*"] ?? ""
      // The page itself is served at /console, not among its files.
      if (file === CONSOLE_PAGE) return notFound(`no file ${file}`)
      return yield* serveFile(file, cacheControlOf(file))
    }),
  ),
  // Also answers `/console` itself.
  HttpRouter.add("GET", "/console/*", consolePage),
  HttpRouter.add(
    "GET",
    "/",
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      if ((request.headers.accept ?? "").includes("text/html")) {
        return HttpServerResponse.redirect("/console", { status: 302 })
      }
      return notFound(
        "no route for GET /: the API is under /collection/… (see /docs); a browser opens /console",
      )
    }),
  ),
)
