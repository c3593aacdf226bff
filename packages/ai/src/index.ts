/**
 * @capture/ai — real-time AI on recorded media: the results stream (`AiStore`), transcription
 * control and reading (`Transcription`), the pipeline worker (`AiPipeline`), and the engines.
 */

export * from "./alerts/AlertMatcher.js"
export * from "./alerts/Alerts.js"
export * from "./audio/AudioBatches.js"
export * from "./audio/Pcm.js"
export * from "./audio/VoiceActivity.js"
export * from "./audio/Wav.js"
export * from "./audio/WavRead.js"
export * from "./engines/ChatModel.js"
export * from "./engines/ChatPrompts.js"
export * from "./engines/LocalEngine.js"
export * from "./engines/OpenAiEngine.js"
export * from "./engines/TesseractEngine.js"
export * from "./engines/TesseractReader.js"
export * from "./engines/TranscriptionEngine.js"
export * from "./pipeline/AiPipeline.js"
export * from "./SceneIndexes.js"
export * from "./search/SearchIndex.js"
export * from "./search/SearchProjection.js"
export * from "./store/AiStore.js"
export * from "./store/RtstreamAi.js"
export * from "./Transcription.js"
export * from "./visual/DisplayDecoder.js"
export * from "./visual/Frames.js"
export * from "./visual/ScreenText.js"
