import { describe, expect, it } from "vitest"
import { discoverChannels, syntheticChannels } from "../src/ChannelDiscovery.js"
import { channelIdPart } from "../src/Channels.js"
import {
  parseAvfoundationDevices,
  parseDshowDevices,
  parsePactlInfo,
  parsePactlSources,
  parseXdpyinfoScreens,
  parseXrandrMonitors,
} from "../src/internal/deviceLists.js"

describe("device list parsers", () => {
  it("reads xrandr monitors, the primary marked with *", () => {
    const output =
      "Monitors: 2\n 0: +*eDP-1 1920/344x1080/194+0+0  eDP-1\n 1: +HDMI-1 2560/597x1440/336+1920+0  HDMI-1\n"
    expect(parseXrandrMonitors(output)).toEqual([
      { index: 0, primary: true, name: "eDP-1", width: 1920, height: 1080, x: 0, y: 0 },
      { index: 1, primary: false, name: "HDMI-1", width: 2560, height: 1440, x: 1920, y: 0 },
    ])
    // Xvfb's single monitor has no * and no output name of its own.
    expect(parseXrandrMonitors("Monitors: 1\n 0: +screen 1280/339x720/190+0+0  screen\n")).toHaveLength(1)
  })

  it("reads X screens from xdpyinfo", () => {
    const output = [
      "name of display:    :5",
      "number of screens:    2",
      "",
      "screen #0:",
      "  dimensions:    1280x720 pixels (325x183 millimeters)",
      "screen #1:",
      "  dimensions:    800x600 pixels (203x152 millimeters)",
    ].join("\n")
    expect(
      parseXdpyinfoScreens(output, ":5.0").map((screen) => [screen.display, screen.width, screen.height]),
    ).toEqual([
      [":5.0", 1280, 720],
      [":5.1", 800, 600],
    ])
  })

  it("reads PulseAudio defaults and sources", () => {
    expect(parsePactlInfo("Server Name: pulseaudio\nDefault Sink: speaker\nDefault Source: vmic\n")).toEqual({
      defaultSink: "speaker",
      defaultSource: "vmic",
    })
    const sources =
      "0\tspeaker.monitor\tmodule-null-sink.c\ts16le 2ch 44100Hz\tIDLE\n2\tvmic\tmodule-remap-source.c\ts16le 2ch 44100Hz\tIDLE\n"
    expect(parsePactlSources(sources)).toEqual(["speaker.monitor", "vmic"])
  })

  it("reads AVFoundation and DirectShow device lists", () => {
    const avfoundation = [
      "[AVFoundation indev @ 0x7f9] AVFoundation video devices:",
      "[AVFoundation indev @ 0x7f9] [0] FaceTime HD Camera",
      "[AVFoundation indev @ 0x7f9] [1] Capture screen 0",
      "[AVFoundation indev @ 0x7f9] AVFoundation audio devices:",
      "[AVFoundation indev @ 0x7f9] [0] MacBook Pro Microphone",
      "[AVFoundation indev @ 0x7f9] [1] BlackHole 2ch",
    ].join("\n")
    expect(parseAvfoundationDevices(avfoundation)).toEqual({
      video: [
        { index: 0, name: "FaceTime HD Camera" },
        { index: 1, name: "Capture screen 0" },
      ],
      audio: [
        { index: 0, name: "MacBook Pro Microphone" },
        { index: 1, name: "BlackHole 2ch" },
      ],
    })
    const dshow = [
      '[dshow @ 000001] "Integrated Camera" (video)',
      '[dshow @ 000001]   Alternative name "@device_pnp_\\\\?\\usb#vid"',
      '[dshow @ 000001] "Microphone Array (Realtek(R) Audio)" (audio)',
      '[dshow @ 000001] "Stereo Mix (Realtek(R) Audio)" (audio)',
    ].join("\n")
    expect(parseDshowDevices(dshow)).toEqual({
      video: ["Integrated Camera"],
      audio: ["Microphone Array (Realtek(R) Audio)", "Stereo Mix (Realtek(R) Audio)"],
    })
  })

  it("makes device names usable in channel ids", () => {
    expect(channelIdPart("alsa_input.pci-0000_00_1f.3.analog-stereo")).toBe(
      "alsa_input.pci-0000_00_1f.3.analog-stereo",
    )
    expect(channelIdPart("bluez_source.AA:BB:CC.a2dp")).toBe("bluez_source.AA-BB-CC.a2dp")
    expect(channelIdPart("x".repeat(80))).toHaveLength(64)
  })
})

describe("channels", () => {
  it("offers synthetic channels with the usual ids", () => {
    const channels = syntheticChannels()
    expect(
      channels.all().map((channel) => [channel.id, channel.type, channel.isPrimary, channel.store]),
    ).toEqual([
      ["display:1", "video", true, true],
      ["mic:default", "audio", false, true],
      ["system_audio:default", "audio", false, true],
    ])
    expect(channels.cameras.default).toBeUndefined()
    expect(channels.mics.default?.toWire()).toEqual({
      channel_id: "mic:default",
      channel_name: "Synthetic microphone (440 Hz tone)",
      type: "audio",
      store: true,
      is_primary: false,
    })
  })

  it("finds no display without DISPLAY", async () => {
    const channels = await discoverChannels({ platform: "linux", env: { PATH: process.env.PATH } })
    expect(channels.displays.all()).toEqual([])
  })
})
