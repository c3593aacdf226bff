/**
 * WebSocket connection ids that say whose they are: `ws-<id body><tag>`, the tag an HMAC of the
 * body with the account and the end user who opened the socket (none for a socket opened with an
 * API key's token), keyed by the deployment's key. Any gateway can then check, without asking
 * anyone, that a session names only a socket of its own account and end user.
 */
import { createHmac, timingSafeEqual } from "node:crypto"
import { makeIdBody } from "@capture/protocol"
import type { Principal } from "../accounts/AccountStore.js"

/** Who opened a socket: an account, and the end user when the credential was bound to one. */
export interface ConnectionOwner {
  readonly account_id: string
  readonly end_user_id: string | null
}

const BODY_LENGTH = 26
const TAG_LENGTH = 22

export class ConnectionIds {
  private readonly key: Buffer

  /** `deploymentKey`: the URL signing key; the ids use a key derived from it, never the key itself. */
  constructor(deploymentKey: Buffer) {
    this.key = createHmac("sha256", deploymentKey).update("ws_connection_id").digest()
  }

  private tag(body: string, owner: ConnectionOwner): string {
    return createHmac("sha256", this.key)
      .update(JSON.stringify([body, owner.account_id, owner.end_user_id]))
      .digest("base64url")
      .slice(0, TAG_LENGTH)
  }

  /** A fresh id for a socket of `owner`. */
  mint(owner: ConnectionOwner): string {
    const body = makeIdBody()
    return `ws-${body}${this.tag(body, owner)}`
  }

  /** Whether `id` was minted for a socket of exactly `owner`. */
  isOwnedBy(id: string, owner: ConnectionOwner): boolean {
    if (!id.startsWith("ws-") || id.length !== 3 + BODY_LENGTH + TAG_LENGTH) return false
    const body = id.slice(3, 3 + BODY_LENGTH)
    const given = Buffer.from(id.slice(3 + BODY_LENGTH))
    const expected = Buffer.from(this.tag(body, owner))
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  /**
   * Whether `principal` may have `session`'s events sent to socket `id`: a socket of the session's
   * end user, or, unless the principal is a client token bound to an end user, an account-wide
   * socket (opened by a credential of no end user, such as an API key) of the session's account.
   */
  mayName(
    id: string,
    principal: Principal,
    session: { readonly account_id: string; readonly end_user_id: string },
  ): boolean {
    if (this.isOwnedBy(id, { account_id: session.account_id, end_user_id: session.end_user_id })) return true
    const boundToEndUser = principal.kind === "client_token" && principal.end_user_id !== null
    return !boundToEndUser && this.isOwnedBy(id, { account_id: session.account_id, end_user_id: null })
  }
}
