/**
 * Who may act on a session: its own account only (another account's session is "not found",
 * its existence never revealed), and a client token bound to an end user only on that user's
 * sessions. Shared by the API handlers and the raw routes (ingest, live playback).
 */
import { type CaptureError, captureError, SessionId } from "@capture/protocol"
import type { ActorHost, LoadedSession } from "@capture/session-actor"
import { Result, Schema } from "effect"
import type { Principal } from "../accounts/AccountStore.js"

const isSessionId = Schema.is(SessionId)

export const sessionNotFound = (id: string): CaptureError =>
  captureError("session_not_found", `no capture session ${id}`, { field: "session_id" })

/**
 * The session as its actor holds it, if `principal` may act on it. Throws only on storage errors.
 * `known`: the state this host last knew, when the caller needs only who may act on the session
 * (its account and end user never change once stored), which spares a lookup on the stream;
 * `{ maxAgeMs }`: a state at most that old (`ActorHost.loadRecent`).
 */
export const authorizeSession = async (
  host: ActorHost,
  principal: Principal,
  sessionId: string,
  freshness: "current" | "known" | { readonly maxAgeMs: number } = "current",
): Promise<Result.Result<LoadedSession, CaptureError>> => {
  if (!isSessionId(sessionId)) return Result.fail(sessionNotFound(sessionId))
  const loaded =
    freshness === "current"
      ? await host.load(sessionId)
      : freshness === "known"
        ? await host.loadKnown(sessionId)
        : await host.loadRecent(sessionId, freshness.maxAgeMs)
  const context = loaded.state.context
  if (loaded.state.value === "none" || context.account_id !== principal.account_id) {
    return Result.fail(sessionNotFound(sessionId))
  }
  if (
    principal.kind === "client_token" &&
    principal.end_user_id !== null &&
    principal.end_user_id !== context.end_user_id
  ) {
    return Result.fail(
      captureError("forbidden", "this client token belongs to another end user", { field: "x-access-token" }),
    )
  }
  return Result.succeed(loaded)
}
