/**
 * The accounts bucket every gateway shares (`<prefix>_accounts`): accounts, credentials,
 * collections and deployment-wide keys, each a JSON record under a key naming its kind
 * (`account.<id>`, `apikey.<hash>`, `token.<hash>`, `collection.<account>.<id>`, `meta.<name>`).
 * Each concept's file declares its records' schema and the bucket decodes with it, so a record
 * this version cannot read (written by a newer one, or corrupt) never reaches the code as a value.
 */
import { createRacing, isRevisionConflict } from "@capture/jetstream"
import { decodeUnknown } from "@capture/protocol"
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { Result, type Schema } from "effect"

/** A schema of a record in the bucket. */
export type RecordSchema = Schema.Codec<unknown, unknown, never, never>

/** A record as read. */
export type RecordRead<A> =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Readable"; readonly value: A; readonly revision: number }
  | { readonly _tag: "Unreadable"; readonly reason: string; readonly revision: number }

/** A record this version cannot read where one is needed to go on. */
export class UnreadableAccountRecord extends Error {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`the accounts record ${key} is unreadable: ${reason}`)
  }
}

export interface AccountBucketOptions {
  readonly replicas?: number
  readonly prefix?: string
  /** Where unreadable records are reported. */
  readonly log?: ((message: string) => void) | undefined
}

const encoder = new TextEncoder()
const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value))

export class AccountBucket {
  private constructor(
    readonly kv: KV,
    private readonly name: string,
    private readonly jsm: JetStreamManager,
    private readonly log: (message: string) => void,
  ) {}

  /** Creates (if missing) and opens the bucket. Safe to run from many processes at once. */
  static async open(nc: NatsConnection, options: AccountBucketOptions = {}): Promise<AccountBucket> {
    const name = `${options.prefix ?? "capture"}_accounts`
    const kv = await createRacing(() =>
      new Kvm(jetstream(nc)).create(name, { replicas: options.replicas ?? 1, history: 1 }),
    )
    return new AccountBucket(kv, name, await jetstreamManager(nc), options.log ?? (() => {}))
  }

  /** The record at `key`, decoded with `schema`. */
  async read<S extends RecordSchema>(schema: S, key: string): Promise<RecordRead<S["Type"]>> {
    const entry = await this.kv.get(key)
    if (entry === null || entry.operation !== "PUT") return { _tag: "Absent" }
    let decoded: Result.Result<S["Type"], unknown>
    try {
      decoded = decodeUnknown(schema)(entry.json())
    } catch (error) {
      decoded = Result.fail(error)
    }
    if (Result.isSuccess(decoded))
      return { _tag: "Readable", value: decoded.success, revision: entry.revision }
    const failure = decoded.failure
    return {
      _tag: "Unreadable",
      reason: failure instanceof Error ? failure.message : String(failure),
      revision: entry.revision,
    }
  }

  /** The record at `key`, or undefined when there is none or it is unreadable (which is logged). */
  async get<S extends RecordSchema>(schema: S, key: string): Promise<S["Type"] | undefined> {
    const read = await this.read(schema, key)
    if (read._tag === "Unreadable") {
      this.log(`accounts: ${new UnreadableAccountRecord(key, read.reason).message}; taken as absent`)
    }
    return read._tag === "Readable" ? read.value : undefined
  }

  /** The record at `key`; throws `UnreadableAccountRecord` when it cannot be read. */
  async need<S extends RecordSchema>(schema: S, key: string): Promise<S["Type"] | undefined> {
    const read = await this.read(schema, key)
    if (read._tag === "Unreadable") throw new UnreadableAccountRecord(key, read.reason)
    return read._tag === "Readable" ? read.value : undefined
  }

  /** True when `key` holds a record, readable or not. */
  async has(key: string): Promise<boolean> {
    return (await this.kv.get(key))?.operation === "PUT"
  }

  /** Stores a new record; rejects when `key` already holds one. */
  async create(key: string, value: unknown): Promise<void> {
    await this.kv.create(key, encode(value))
  }

  /** Rewrites the record at `key` if it is still at `revision`; rejects when it moved on. */
  async replace(key: string, value: unknown, revision: number): Promise<void> {
    await this.kv.update(key, encode(value), revision)
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.kv.put(key, encode(value))
  }

  async purge(key: string): Promise<void> {
    await this.kv.purge(key)
  }

  /** Removes everything `key` ever held, leaving no delete marker (watchers are not told). */
  async purgeSubject(key: string): Promise<void> {
    await this.jsm.streams.purge(`KV_${this.name}`, { filter: `$KV.${this.name}.${key}` })
  }

  /** Keys matching a subject filter (`apikey.>`). */
  async keys(filter: string): Promise<ReadonlyArray<string>> {
    const out: Array<string> = []
    for await (const key of await this.kv.keys(filter)) out.push(key)
    return out
  }

  /**
   * Rewrites the record at `key` with `change` (compare-and-set, read again after losing a race).
   * Throws when there is no record (`no <what>`) or it cannot be read.
   */
  async update<S extends RecordSchema>(
    schema: S,
    key: string,
    change: (value: S["Type"]) => S["Type"],
    what = `record ${key}`,
  ): Promise<S["Type"]> {
    for (;;) {
      const read = await this.read(schema, key)
      if (read._tag === "Absent") throw new Error(`no ${what}`)
      if (read._tag === "Unreadable") throw new UnreadableAccountRecord(key, read.reason)
      const next = change(read.value)
      try {
        await this.kv.update(key, encode(next), read.revision)
        return next
      } catch (error) {
        // Lost a race with another writer: read again.
        if (!isRevisionConflict(error)) throw error
      }
    }
  }
}
