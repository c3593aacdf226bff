import { Result } from "effect"
import { describe, expect, it } from "vitest"
import type { CaptureSession } from "../src/CaptureSession.js"
import { decodeUnknown } from "../src/Decode.js"
import {
  ListRtstreamsQuery,
  RtstreamExportView,
  RtstreamList,
  rtstreamResourceOf,
  StreamRangeQuery,
} from "../src/RtstreamApiShapes.js"
import { checkRoundTrip } from "./roundTrip.js"

const refusalOf = (result: Result.Result<unknown, { error_code: string; field?: string }>) =>
  Result.isFailure(result) ? { error_code: result.failure.error_code, field: result.failure.field } : null

describe("rtstream shapes", () => {
  it("round-trip the list and the export answer", async () => {
    await checkRoundTrip(RtstreamList, 50)
    await checkRoundTrip(RtstreamExportView, 100)
  })

  it("read generateStream's range as Unix seconds, refusing milliseconds and non-numbers", () => {
    const decode = decodeUnknown(StreamRangeQuery)
    expect(decode({ start: "1763000005", end: "1763000011.25" })).toEqual(
      Result.succeed({ start: 1763000005, end: 1763000011.25 }),
    )
    expect(decode({ start: "1", end: "2", format: "mp4" })).toEqual(
      Result.succeed({ start: 1, end: 2, format: "mp4" }),
    )
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ start: "1763000005000", end: "1763000011000" }, "invalid_field", "start"],
      [{ start: "", end: "2" }, "invalid_field", "start"],
      [{ start: "0x10", end: "2" }, "invalid_field", "start"],
      [{ start: "-1", end: "2" }, "invalid_field", "start"],
      [{ start: "1", end: "Infinity" }, "invalid_field", "end"],
      [{ start: "1" }, "missing_field", "end"],
      [{ start: "1", end: "2", format: "webm" }, "invalid_field", "format"],
    ]
    for (const [query, error_code, field] of cases) {
      expect(refusalOf(decode(query)), JSON.stringify(query)).toEqual({ error_code, field })
    }
  })

  it("read VideoDB's list query, with pages from 1 to 100", () => {
    const decode = decodeUnknown(ListRtstreamsQuery)
    expect(
      decode({ limit: "100", offset: "0", status: "connected", ordering: "-name", name: "mic" }),
    ).toEqual(Result.succeed({ limit: 100, offset: 0, status: "connected", ordering: "-name", name: "mic" }))
    for (const [query, field] of [
      [{ limit: "0" }, "limit"],
      [{ limit: "101" }, "limit"],
      [{ limit: "1e2" }, "limit"],
      [{ offset: "-5" }, "offset"],
      [{ status: "active" }, "status"],
      [{ ordering: "created" }, "ordering"],
      [{ session_id: "cap-a b" }, "session_id"],
    ] as const) {
      expect(refusalOf(decode(query)), JSON.stringify(query)).toEqual({ error_code: "invalid_field", field })
    }
  })

  it("make an rtstream's resource from its session: id, session, end user and whether it is stored", () => {
    const rtstream = {
      rtstream_id: "rts-01JC0000000000000000000000-01",
      name: "mic:default",
      channel_id: "mic",
      media_types: ["audio"],
      collection_id: "default",
      status: "connected",
      created_at: "2026-01-01T00:00:00.000Z",
      exported_asset_id: null,
    } as const
    const session = {
      id: "cap-01JC0000000000000000000000",
      end_user_id: "user-1",
      channels: [{ channel_id: "mic:default", name: "Mic", type: "audio", store: false, is_primary: false }],
    } as unknown as CaptureSession
    expect(rtstreamResourceOf(session, rtstream as never)).toEqual({
      id: rtstream.rtstream_id,
      ...rtstream,
      session_id: session.id,
      end_user_id: "user-1",
      store: false,
    })
  })
})
