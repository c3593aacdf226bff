/** Collections: an account's groups of sessions. `default` always exists and is never stored. */
import { CollectionId, DEFAULT_COLLECTION, makeIdBody } from "@capture/protocol"
import { Schema } from "effect"
import type { AccountBucket } from "./AccountBucket.js"

/** A collection as stored (`collection.<account id>.<collection id>`). */
export const CollectionRecord = Schema.Struct({
  id: CollectionId,
  account_id: Schema.String,
  name: Schema.String,
  description: Schema.String,
})
export type Collection = typeof CollectionRecord.Type

export class Collections {
  constructor(private readonly bucket: AccountBucket) {}

  /** A collection of the account; `default` always exists. */
  async collection(accountId: string, collectionId: string): Promise<Collection | undefined> {
    if (collectionId === DEFAULT_COLLECTION) {
      return {
        id: DEFAULT_COLLECTION,
        account_id: accountId,
        name: "default",
        description: "Default collection",
      }
    }
    return this.bucket.get(CollectionRecord, `collection.${accountId}.${collectionId}`)
  }

  async createCollection(accountId: string, name: string, description = ""): Promise<Collection> {
    const collection: Collection = {
      id: `c-${makeIdBody()}` as CollectionId,
      account_id: accountId,
      name,
      description,
    }
    await this.bucket.create(`collection.${accountId}.${collection.id}`, collection)
    return collection
  }
}
