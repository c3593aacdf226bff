import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  CAPTURE_FAILED,
  FAIL_SESSION_ROUTE,
  FailSessionRequest,
  failSessionPath,
  PAUSE_CHANNELS_ROUTE,
  pauseChannelsPath,
  RawAssetView,
  RESUME_CHANNELS_ROUTE,
  resumeChannelsPath,
  START_SESSION_ROUTE,
  STOP_SESSION_ROUTE,
  StartSessionRequest,
  stopSessionPath,
  VideoView,
} from "../src/CaptureApiShapes.js"
import { decodeUnknown } from "../src/Decode.js"
import { checkRoundTrip } from "./roundTrip.js"

describe("export objects", () => {
  it("round-trips the video object", async () => {
    await checkRoundTrip(VideoView, 50)
  })

  it("round-trips the raw asset object, for video and audio assets", async () => {
    const seen = await checkRoundTrip(RawAssetView, 100)
    expect(new Set(seen.map((view) => view.id.slice(0, 2)))).toEqual(new Set(["m-", "a-"]))
  })
})

describe("FailSessionRequest", () => {
  const decode = decodeUnknown(FailSessionRequest)

  it("takes a recorder's reason", async () => {
    const body = {
      error: { code: CAPTURE_FAILED, message: "ffmpeg for display:1 could not start (exit code 1)" },
    }
    expect(decode(body)).toEqual(Result.succeed(body))
    await checkRoundTrip(FailSessionRequest, 50)
  })

  it("refuses a missing or malformed reason, naming the field", () => {
    const cases: Array<[unknown, string, string]> = [
      [{}, "missing_field", "error"],
      [{ error: { message: "x" } }, "missing_field", "error.code"],
      [{ error: { code: "Capture Failed", message: "x" } }, "invalid_field", "error.code"],
      [{ error: { code: "c".repeat(65), message: "x" } }, "invalid_field", "error.code"],
      [{ error: { code: "capture_failed", message: "" } }, "invalid_field", "error.message"],
      [{ error: { code: "capture_failed", message: "m".repeat(2049) } }, "invalid_field", "error.message"],
    ]
    for (const [body, error_code, field] of cases) {
      const result = decode(body)
      expect(
        Result.isFailure(result)
          ? { error_code: result.failure.error_code, field: result.failure.field }
          : null,
      ).toEqual({
        error_code,
        field,
      })
    }
  })
})

describe("starting and stopping a session", () => {
  it("names the routes a recorder calls, and builds the stop and fail paths with the id encoded", () => {
    expect(START_SESSION_ROUTE).toBe("/capture/session/start")
    expect(STOP_SESSION_ROUTE).toBe("/capture/session/:session_id/stop")
    expect(stopSessionPath("cap-1")).toBe("/capture/session/cap-1/stop")
    expect(stopSessionPath("cap/1")).toBe("/capture/session/cap%2F1/stop")
    expect(FAIL_SESSION_ROUTE).toBe("/capture/session/:session_id/fail")
    expect(failSessionPath("cap-1")).toBe("/capture/session/cap-1/fail")
  })

  it("reads a start body as the recorder sends it (every channel field set) and as a bare client does", () => {
    const decode = decodeUnknown(StartSessionRequest)
    const full = {
      session_id: "cap-1",
      channels: [
        { channel_id: "display:1", channel_name: "Display 1", type: "video", store: true, is_primary: true },
      ],
      primary_video_channel_id: "display:1",
    }
    expect(Result.getOrThrow(decode(full))).toEqual(full)
    expect(Result.isSuccess(decode({ session_id: "cap-1", channels: [{ channel_id: "mic:default" }] }))).toBe(
      true,
    )
    const refused = decode({ session_id: "cap-1", channels: [{ channel_id: "speaker:1" }] })
    expect(Result.isFailure(refused) && refused.failure.field).toBe("channels[0].channel_id")
  })
})

describe("pause and resume routes", () => {
  it("fill the session id into the routes the gateway serves, encoded", () => {
    expect(pauseChannelsPath("cap-1")).toBe(PAUSE_CHANNELS_ROUTE.replace(":session_id", "cap-1"))
    expect(resumeChannelsPath("cap-1")).toBe(RESUME_CHANNELS_ROUTE.replace(":session_id", "cap-1"))
    expect(pauseChannelsPath("a/b")).toBe("/capture/session/a%2Fb/pause")
  })
})
