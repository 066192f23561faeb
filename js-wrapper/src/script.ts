/**
 * The script-tag build: one self-contained file (`dist/personafin.js`, the wasm inlined) that
 * a page loads with the async snippet; see `tag.ts`. No plugins: `dist/personafin.all.js` has
 * them.
 */
import wasm from "../pkg/personafin_tracker_bg.wasm";
import { tag } from "./tag.js";

tag(wasm);
