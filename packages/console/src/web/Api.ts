/**
 * Calling the capture API from the console: the API key lives in this tab's sessionStorage (gone
 * when the tab closes, never in a URL) and goes out as `x-access-token`; the envelope is unwrapped
 * and a refusal becomes an `ApiError` with its `error_code`.
 */

const KEY = "capture.api_key"
const COLLECTION = "capture.collection_id"

export const credentials = {
  get apiKey(): string | null {
    return sessionStorage.getItem(KEY)
  },
  get collectionId(): string {
    return sessionStorage.getItem(COLLECTION) ?? "default"
  },
  signIn(apiKey: string, collectionId: string): void {
    sessionStorage.setItem(KEY, apiKey)
    sessionStorage.setItem(COLLECTION, collectionId)
  },
  signOut(): void {
    sessionStorage.removeItem(KEY)
    sessionStorage.removeItem(COLLECTION)
  },
}

/** A refusal or a failure of a call: the HTTP status, the API's `error_code` and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Calls `path` with `apiKey` (the signed-in key by default); resolves with the envelope's `data`. */
export const api = async <A>(
  path: string,
  options: { readonly method?: string; readonly body?: unknown; readonly apiKey?: string } = {},
): Promise<A> => {
  const apiKey = options.apiKey ?? credentials.apiKey
  if (apiKey === null) throw new ApiError(401, "unauthorized", "not signed in")
  const response = await fetch(path, {
    method: options.method ?? "GET",
    headers: {
      "x-access-token": apiKey,
      accept: "application/json",
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  })
  let envelope: { success?: boolean; data?: A; message?: string; error_code?: string }
  try {
    envelope = (await response.json()) as typeof envelope
  } catch {
    throw new ApiError(response.status, "bad_response", `${response.status} ${response.statusText}`)
  }
  if (!response.ok || envelope.success === false) {
    throw new ApiError(
      response.status,
      envelope.error_code ?? "error",
      `${envelope.message ?? response.statusText} (${envelope.error_code ?? response.status})`,
    )
  }
  return envelope.data as A
}

/** The message to show for a failed call. */
export const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : String(error)

/** A path with each parameter percent-encoded: path`/capture/session/${id}`. */
export const path = (strings: TemplateStringsArray, ...values: ReadonlyArray<string>): string =>
  strings.reduce(
    (out, part, i) => out + part + (i < values.length ? encodeURIComponent(values[i] ?? "") : ""),
    "",
  )
