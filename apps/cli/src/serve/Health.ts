/**
 * Liveness and readiness for a supervisor or load balancer:
 * `GET /healthz` answers while the process is up; `GET /readyz` only while NATS is connected and
 * the event stream answers, so traffic is routed to instances that can actually serve it.
 */
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { describe } from "../Exit.js"
import type { ServeNats } from "./ServeNats.js"

/** How long a readiness probe waits for JetStream. */
const PROBE_TIMEOUT_MS = 2_000

/** Why the instance is not ready, or undefined when it is. */
const notReadyReason = async (
  nats: ServeNats,
  jsm: JetStreamManager,
  stream: string,
): Promise<{ readonly reason: string } | { readonly messages: number }> => {
  if (nats.nc.isClosed() || nats.nc.isDraining()) return { reason: "nats connection closed" }
  if (!nats.connected()) return { reason: "nats disconnected; reconnecting" }
  try {
    const info = await jsm.streams.info(stream)
    return { messages: info.state.messages }
  } catch (error) {
    return { reason: `stream ${stream} unreachable: ${describe(error)}` }
  }
}

/** The `/healthz` and `/readyz` routes. */
export const healthRoutes = (
  nats: ServeNats,
  stream: string,
): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  Layer.unwrap(
    Effect.gen(function* () {
      // No API check here: it is a NATS request, and one timing out (a node down, an election)
      // while the routes are built would end the process; the probe itself asks the stream.
      const jsm = yield* Effect.promise(() =>
        jetstreamManager(nats.nc, { timeout: PROBE_TIMEOUT_MS, checkAPI: false }),
      )
      const readyz = Effect.promise(() => notReadyReason(nats, jsm, stream)).pipe(
        Effect.map((probe) =>
          "reason" in probe
            ? HttpServerResponse.jsonUnsafe({ status: "unavailable", reason: probe.reason }, { status: 503 })
            : HttpServerResponse.jsonUnsafe({ status: "ready", stream, messages: probe.messages }),
        ),
      )
      return Layer.mergeAll(
        HttpRouter.add("GET", "/healthz", HttpServerResponse.jsonUnsafe({ status: "ok" })),
        HttpRouter.add("GET", "/readyz", readyz),
      )
    }),
  )
