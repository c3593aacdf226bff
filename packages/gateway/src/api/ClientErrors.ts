/**
 * What Node's HTTP server answers on its own, before any route runs (a request it cannot parse,
 * headers too large, a request that took too long), in the failure envelope like every other
 * refusal, instead of Node's bare status line.
 */
import type { Server } from "node:http"
import type { Duplex } from "node:stream"
import { captureError, type ErrorCode, failureOf } from "@capture/protocol"

const answerOf = (
  code: string | undefined,
): { status: number; text: string; error: ErrorCode; message: string } => {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return {
        status: 431,
        text: "Request Header Fields Too Large",
        error: "invalid_request",
        message: "the request headers are too large",
      }
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return {
        status: 408,
        text: "Request Timeout",
        error: "invalid_request",
        message: "the request did not arrive in time",
      }
    default:
      return { status: 400, text: "Bad Request", error: "invalid_request", message: "malformed HTTP request" }
  }
}

/** Answers the requests Node refuses itself with the failure envelope, then closes the socket. */
export const answerClientErrorsWithEnvelope = (server: Pick<Server, "on">): void => {
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already under way on this socket (or a peer gone) can only be cut.
    const pending = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (error.code === "ECONNRESET" || !socket.writable || pending?.headersSent === true) {
      socket.destroy()
      return
    }
    const answer = answerOf(error.code)
    const body = JSON.stringify(failureOf(captureError(answer.error, answer.message)))
    socket.end(
      `HTTP/1.1 ${answer.status} ${answer.text}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  })
}
