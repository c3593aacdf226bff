/**
 * The process that keeps Tesseract loaded (`TesseractEngine` starts it, one per reader): Debian's
 * `libtesseract.so.5` through its C API (koffi, an FFI with prebuilt binaries), its English model
 * loaded once, reading the images written to its stdin one after another. Tesseract runs in this
 * process, not the caller's: a crash in the library ends this process only.
 *
 * Wire, both ways little-endian:
 *   request  u32 id, i32 left, i32 top, i32 width, i32 height (all 0: the whole image), u32 length, image
 *            (any format leptonica reads: PGM, JPEG, PNG)
 *   response u32 id, i32 status (0 text; 1 the image could not be read; 2 the engine could not load,
 *            sent once as id 0 before it exits), u32 length, UTF-8 text (or the reason)
 * Once loaded it answers id 0 with status 0 ("ready").
 */
import { createRequire } from "node:module"

const REQUEST_HEADER = 24
const PSM_AUTO = 3

const reply = (id: number, status: number, text: string): void => {
  const body = Buffer.from(text, "utf8")
  const header = Buffer.alloc(12)
  header.writeUInt32LE(id, 0)
  header.writeInt32LE(status, 4)
  header.writeUInt32LE(body.length, 8)
  process.stdout.write(Buffer.concat([header, body]))
}

type Read = (image: Buffer, rectangle: readonly [number, number, number, number]) => string | undefined

const load = (library: string, language: string): Read => {
  const require = createRequire(import.meta.url)
  const koffi = require("koffi") as typeof import("koffi")
  const tesseract = koffi.load(library)
  const leptonica = koffi.load(library.replace(/tesseract\.so\.\d+$/, "lept.so.5"))
  const pixReadMem = leptonica.func("void *pixReadMem(const uint8_t *data, size_t size)")
  const pixDestroy = leptonica.func("void pixDestroy(_Inout_ void **pix)")
  const create = tesseract.func("void *TessBaseAPICreate()")
  const init = tesseract.func("int TessBaseAPIInit3(void *api, const char *datapath, const char *language)")
  const setPageSegMode = tesseract.func("void TessBaseAPISetPageSegMode(void *api, int mode)")
  const setImage = tesseract.func("void TessBaseAPISetImage2(void *api, void *pix)")
  const setRectangle = tesseract.func(
    "void TessBaseAPISetRectangle(void *api, int left, int top, int width, int height)",
  )
  const utf8Text = tesseract.func("void *TessBaseAPIGetUTF8Text(void *api)")
  const deleteText = tesseract.func("void TessDeleteText(void *text)")
  const clear = tesseract.func("void TessBaseAPIClear(void *api)")
  const api = create()
  if (init(api, null, language) !== 0) throw new Error(`no "${language}" model`)
  // As the CLI's `--psm 3`: automatic page segmentation, no orientation detection.
  setPageSegMode(api, PSM_AUTO)
  return (image, [left, top, width, height]) => {
    const pix = pixReadMem(image, image.length)
    if (pix === null) return undefined
    try {
      setImage(api, pix)
      if (width > 0 && height > 0) setRectangle(api, left, top, width, height)
      const text = utf8Text(api)
      if (text === null) return ""
      try {
        return koffi.decode(text, "char", -1) as string
      } finally {
        deleteText(text)
      }
    } finally {
      clear(api)
      pixDestroy([pix])
    }
  }
}

const [library = "libtesseract.so.5", language = "eng"] = process.argv.slice(2)
let read: Read
try {
  read = load(library, language)
} catch (error) {
  reply(0, 2, error instanceof Error ? error.message : String(error))
  process.exit(0)
}
reply(0, 0, "ready")

let pending: Buffer = Buffer.alloc(0)
process.stdin.on("data", (chunk: Buffer) => {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
  while (pending.length >= REQUEST_HEADER) {
    const length = pending.readUInt32LE(20)
    if (pending.length < REQUEST_HEADER + length) break
    const id = pending.readUInt32LE(0)
    const rectangle = [
      pending.readInt32LE(4),
      pending.readInt32LE(8),
      pending.readInt32LE(12),
      pending.readInt32LE(16),
    ] as const
    const image = pending.subarray(REQUEST_HEADER, REQUEST_HEADER + length)
    pending = pending.subarray(REQUEST_HEADER + length)
    const text = read(image, rectangle)
    if (text === undefined) reply(id, 1, "not an image leptonica reads")
    else reply(id, 0, text)
  }
})
// The reader went away: so does the engine.
process.stdin.on("end", () => process.exit(0))
