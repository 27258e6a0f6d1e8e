// Decoding a message's header section as the raw source has it, in order:
// unfolded (RFC 5322 2.2.3), with RFC 2047 encoded words decoded.  Used by
// the Headers tab; everything it returns is shown with textContent only.

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

/** Bytes of a B (base64) or Q encoded text. */
function wordBytes(encoding, text) {
  if (encoding === "b" || encoding === "B") {
    const binary = atob(text.replace(/[^A-Za-z0-9+/]/g, ""));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }
  const bytes = [];
  const q = text.replace(/_/g, " ");
  for (let i = 0; i < q.length; i++) {
    const hex = q.slice(i + 1, i + 3);
    if (q[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(q.charCodeAt(i) & 0xff);
    }
  }
  return Uint8Array.from(bytes);
}

/** One header value with its encoded words decoded; undecodable words stay. */
export function decodeWords(value) {
  // Whitespace between two adjacent encoded words is not part of the text.
  const joined = value.replace(/(\?=)\s+(?==\?)/g, "$1");
  return joined.replace(ENCODED_WORD, (word, charset, encoding, text) => {
    try {
      const label = charset.split("*")[0]; // RFC 2231 language suffix
      return new TextDecoder(label).decode(wordBytes(encoding, text));
    } catch {
      return word;
    }
  });
}

/** The header section of a raw message: [[name, decoded value], ...] in order. */
export function parseHeaders(raw) {
  const end = raw.search(/\r?\n\r?\n/);
  const section = end === -1 ? raw : raw.slice(0, end);
  const headers = [];
  for (const line of section.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && headers.length) {
      headers[headers.length - 1][1] += line;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon > 0) headers.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return headers.map(([name, value]) => [name.trim(), decodeWords(value.trim())]);
}
