/**
 * Webhook delivery as one part: the session webhook dispatcher and the alert dispatcher, sharing
 * one set of delivery settings (the account's secrets, the callback address policy, the attempt
 * schedule and timeout). A gateway runs it beside its API, or a process without the API does
 * (`capture serve --role workers`); both are shared durable consumers, so any number may run.
 */
import type { AiStore } from "@capture/ai"
import type { SessionRuntime } from "@capture/session-actor"
import { Result } from "effect"
import type { AccountStore } from "../accounts/AccountStore.js"
import { AlertDispatcher } from "../alerts/AlertDispatcher.js"
import { type CallbackUrlPolicy, parseAllowList, type ResolvedAddress } from "./CallbackUrlPolicy.js"
import { WebhookDispatcher } from "./WebhookDispatcher.js"

/** How webhooks are delivered; only `webhookAllowHosts` and `log` are required. */
export interface WebhookDeliveryOptions {
  /** Hosts or CIDRs a callback URL may point at even though they are private (`CAPTURE_WEBHOOK_ALLOW_HOSTS`). */
  readonly webhookAllowHosts: string
  /** How callback URL hosts are resolved (default: the system resolver); tests answer without DNS. */
  readonly webhookResolve?: ((hostname: string) => Promise<ReadonlyArray<ResolvedAddress>>) | undefined
  /** Delays between webhook attempts, in ms; undefined: the default schedule. */
  readonly webhookScheduleMs?: ReadonlyArray<number> | undefined
  /** How long webhook lanes, delivery records and retry records are kept after their last write (ms; default 7 days). */
  readonly webhookRetentionMs?: number | undefined
  readonly webhookRequestTimeoutMs?: number | undefined
  readonly webhookAckWaitMs?: number | undefined
  readonly log: (message: string) => void
}

/** The callback address policy the settings give; a wrong allow list throws. */
export const callbackUrlPolicyOf = (options: WebhookDeliveryOptions): CallbackUrlPolicy => {
  const allowList = parseAllowList(options.webhookAllowHosts)
  if (Result.isFailure(allowList)) throw new Error(allowList.failure.message)
  return {
    ...allowList.success,
    ...(options.webhookResolve === undefined ? {} : { resolve: options.webhookResolve }),
  }
}

/** Both dispatchers, running. */
export interface WebhookDelivery {
  readonly sessions: WebhookDispatcher
  readonly alerts: AlertDispatcher
  /** Stops the alert dispatcher, then the session one. */
  readonly stop: () => Promise<void>
}

/** Starts both dispatchers; a failed start stops what it started. */
export const startWebhookDelivery = async (
  runtime: SessionRuntime,
  stores: { readonly accounts: AccountStore; readonly ai: AiStore },
  options: WebhookDeliveryOptions,
): Promise<WebhookDelivery> => {
  // Session webhooks and alert webhooks: the same secrets, address policy and attempt schedule.
  const signed = {
    secretsFor: (accountId: string) => stores.accounts.webhookSecrets(accountId),
    policy: callbackUrlPolicyOf(options),
    log: options.log,
    ...(options.webhookScheduleMs === undefined ? {} : { schedule: options.webhookScheduleMs }),
    ...(options.webhookRequestTimeoutMs === undefined
      ? {}
      : { requestTimeoutMs: options.webhookRequestTimeoutMs }),
  }
  const sessions = await WebhookDispatcher.start(runtime.topology.nc, runtime, {
    ...signed,
    ...(options.webhookAckWaitMs === undefined ? {} : { ackWaitMs: options.webhookAckWaitMs }),
    ...(options.webhookRetentionMs === undefined ? {} : { retentionMs: options.webhookRetentionMs }),
  })
  const alerts = await AlertDispatcher.start(
    runtime.topology.nc,
    stores.ai,
    runtime.topology.options,
    signed,
  ).catch(async (error: unknown) => {
    await sessions.stop()
    throw error
  })
  return {
    sessions,
    alerts,
    stop: async () => {
      await alerts.stop()
      await sessions.stop()
    },
  }
}
