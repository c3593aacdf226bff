/**
 * The Capture API over HTTP, as any client sees it: one credential (an API key, or a client token
 * scoped to one end user) in `x-access-token`, the `{success, data}` envelope unwrapped, and a
 * refusal turned into a `CaptureApiError` carrying its status, `error_code` and field.
 */

/** A refusal from the server, or a server that could not be reached or answered no envelope. */
export class CaptureApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly errorCode: string | null,
    readonly field: string | null,
  ) {
    super(message)
  }
}

type Query = Readonly<Record<string, string | number | undefined>>

export class CaptureHttp {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** `data` of a successful answer; rejects with `CaptureApiError` otherwise. */
  async data<A = Record<string, unknown>>(
    method: "GET" | "POST",
    path: string,
    options: { readonly query?: Query; readonly body?: object } = {},
  ): Promise<A> {
    const url = new URL(`${this.baseUrl.replace(/\/+$/, "")}${path}`)
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value))
    }
    let response: Response
    try {
      response = await fetch(url, {
        method,
        headers: {
          "x-access-token": this.token,
          ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (error) {
      const reason =
        error instanceof Error
          ? error.cause instanceof Error
            ? error.cause.message
            : error.message
          : String(error)
      throw new CaptureApiError(
        `the capture server at ${this.baseUrl} did not answer: ${reason}`,
        null,
        null,
        null,
      )
    }
    const text = await response.text()
    let envelope: {
      success?: unknown
      data?: unknown
      message?: unknown
      error_code?: unknown
      field?: unknown
    }
    try {
      envelope = JSON.parse(text)
    } catch {
      throw new CaptureApiError(
        `${method} ${path}: the server answered ${response.status} without a JSON envelope`,
        response.status,
        null,
        null,
      )
    }
    if (response.ok && envelope.success === true) return envelope.data as A
    const code = typeof envelope.error_code === "string" ? envelope.error_code : null
    const field = typeof envelope.field === "string" ? envelope.field : null
    const message = typeof envelope.message === "string" ? envelope.message : `status ${response.status}`
    throw new CaptureApiError(
      `${response.status} ${code ?? "error"}${field === null ? "" : ` (${field})`}: ${message}`,
      response.status,
      code,
      field,
    )
  }
}
