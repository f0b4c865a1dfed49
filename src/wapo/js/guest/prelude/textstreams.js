// @provides TextEncoderStream TextDecoderStream
// The Encoding standard's streams: TransformStreams of strings to UTF-8 chunks and back, on
// TextEncoder/TextDecoder (a TextEncoderStream keeps a lone high surrogate that ends a chunk for
// the next one, as the standard says; the decoder's streaming mode keeps split UTF-8 sequences).

class TextEncoderStream {
  #transform;
  constructor() {
    const encoder = new TextEncoder();
    let pending = "";
    this.#transform = new TransformStream({
      transform(chunk, controller) {
        let text = pending + String(chunk);
        pending = "";
        const last = text.charCodeAt(text.length - 1);
        if (last >= 0xd800 && last <= 0xdbff) {
          pending = text.slice(-1);
          text = text.slice(0, -1);
        }
        if (text) controller.enqueue(encoder.encode(text));
      },
      flush(controller) {
        if (pending) controller.enqueue(new Uint8Array([0xef, 0xbf, 0xbd]));
      },
    });
  }
  get encoding() { return "utf-8"; }
  get readable() { return this.#transform.readable; }
  get writable() { return this.#transform.writable; }
  get [Symbol.toStringTag]() { return "TextEncoderStream"; }
}

class TextDecoderStream {
  #transform; #decoder;
  constructor(label = "utf-8", options = {}) {
    const decoder = new TextDecoder(label, options);
    this.#decoder = decoder;
    this.#transform = new TransformStream({
      transform(chunk, controller) {
        if (!(chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)))
          throw new TypeError("TextDecoderStream: a chunk must be an ArrayBuffer or an ArrayBufferView");
        const text = decoder.decode(chunk, { stream: true });
        if (text) controller.enqueue(text);
      },
      flush(controller) {
        const text = decoder.decode();
        if (text) controller.enqueue(text);
      },
    });
  }
  get encoding() { return this.#decoder.encoding; }
  get fatal() { return this.#decoder.fatal; }
  get ignoreBOM() { return this.#decoder.ignoreBOM; }
  get readable() { return this.#transform.readable; }
  get writable() { return this.#transform.writable; }
  get [Symbol.toStringTag]() { return "TextDecoderStream"; }
}

return { TextEncoderStream, TextDecoderStream };
