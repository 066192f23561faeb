/**
 * The script-tag build (`dist/personafin.js`) that a page loads with the async snippet; see
 * `tag.ts`. It compiles `personafin.wasm` from beside itself as it streams in, checked against
 * the hash the build wrote in. `personafin.inline.js` is the one-file alternative, and
 * `personafin.all.js` this with every plugin.
 */
import { tag } from "./tag.js";

tag();
