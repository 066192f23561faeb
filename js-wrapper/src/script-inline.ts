/**
 * The one-file script-tag build (`dist/personafin.inline.js`): the wasm inlined, for pages
 * that cannot serve a second file; larger, and compiled only once it has all arrived.
 */
import wasm from "../pkg/personafin_tracker_bg.wasm";
import { tag } from "./tag.js";

tag(wasm);
