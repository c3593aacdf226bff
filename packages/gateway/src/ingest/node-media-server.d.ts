// The parts of node-media-server (CommonJS, untyped) RtmpIngest uses: its RTMP protocol parser,
// FLV tag writer and logger.
declare module "node-media-server/src/protocol/rtmp.js" {
  export default class Rtmp {
    onConnectCallback: (request: { app: string; name: string }) => void
    onPlayCallback: () => void
    onPushCallback: () => void
    onPacketCallback: (packet: { codec_type: number; codec_id: number }) => void
    onOutputCallback: (buffer: Buffer) => void
    streamId: number
    parserData(data: Buffer): string | null | undefined
    respondPublish(): void
    sendStatusMessage(streamId: number, level: string, code: string, description: string): void
  }
}
declare module "node-media-server/src/protocol/flv.js" {
  const Flv: {
    createHeader(hasAudio: boolean, hasVideo: boolean): Buffer
    createMessage(packet: { codec_type: number }): Buffer
  }
  export default Flv
}
declare module "node-media-server/src/core/logger.js" {
  const logger: { log: (message: string, level?: string) => void }
  export default logger
}
