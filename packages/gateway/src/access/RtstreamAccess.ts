/**
 * Who may reach an rtstream: the account of its session only, and a client token bound to an end
 * user only that user's. Anything else, like an id no session has, is "not found" (404
 * `rtstream_not_found`): an rtstream's existence is never revealed. Shared by every route under
 * `/rtstream/{id}` (these and the AI pipeline's).
 */
import {
  type CaptureError,
  type CaptureSession,
  captureError,
  RtstreamId,
  type RtstreamView,
  sessionIdOfRtstream,
} from "@capture/protocol"
import { type LoadedSession, type SessionRuntime, toCaptureSession } from "@capture/session-actor"
import { Result, Schema } from "effect"
import type { Principal } from "../accounts/AccountStore.js"

const isRtstreamId = Schema.is(RtstreamId)

/** An rtstream the principal may reach, with its session as the actor holds it and as clients see it. */
export interface ReachableRtstream {
  readonly loaded: LoadedSession
  readonly session: CaptureSession
  readonly rtstream: RtstreamView
}

export const rtstreamNotFound = (id: string): CaptureError =>
  captureError("rtstream_not_found", `no rtstream ${id}`, { field: "rtstream_id" })

/** Whether `principal` may see a session of `account_id` and `end_user_id` (sessions and rtstreams alike). */
export const mayReach = (
  principal: Principal,
  session: { readonly account_id: string; readonly end_user_id: string },
): boolean =>
  session.account_id === principal.account_id &&
  (principal.kind === "api_key" ||
    principal.end_user_id === null ||
    principal.end_user_id === session.end_user_id)

/**
 * The rtstream `rtstreamId` with its session, read from the session's actor (so a change just made
 * is seen), if `principal` may reach it. Throws only on storage errors.
 */
export const authorizeRtstream = async (
  runtime: SessionRuntime,
  principal: Principal,
  rtstreamId: string,
): Promise<Result.Result<ReachableRtstream, CaptureError>> => {
  if (!isRtstreamId(rtstreamId)) return Result.fail(rtstreamNotFound(rtstreamId))
  // Derived ids name their session; one drawn at random (made before ids were derived) is
  // found in the read model's rtstream index.
  const sessionId =
    sessionIdOfRtstream(rtstreamId) ?? (await runtime.readModel.rtstream(rtstreamId))?.session_id
  if (sessionId === undefined) return Result.fail(rtstreamNotFound(rtstreamId))
  const loaded = await runtime.host.load(sessionId)
  const session = toCaptureSession(loaded.state)
  if (session === null || !mayReach(principal, loaded.state.context)) {
    return Result.fail(rtstreamNotFound(rtstreamId))
  }
  const rtstream = session.rtstreams.find((r) => r.rtstream_id === rtstreamId)
  return rtstream === undefined
    ? Result.fail(rtstreamNotFound(rtstreamId))
    : Result.succeed({ loaded, session, rtstream })
}
