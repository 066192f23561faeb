/** The wasm module as bytes, inlined by the script-tag build (esbuild's binary loader). */
declare module "*.wasm" {
  const bytes: Uint8Array;
  export default bytes;
}
