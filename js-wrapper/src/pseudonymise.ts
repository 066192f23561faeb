/**
 * The customer-side anonymisation tool, for your servers: turn your users' identifiers into
 * pseudonyms under a secret only you hold, before anything reaches Personafin. The same
 * function as `ingest pseudonymise --secret-file F`: HMAC-SHA256 in lowercase hex.
 *
 * ```ts
 * import { pseudonymise } from "@personafin/capture/pseudonymise";
 * const clientRef = await pseudonymise(process.env.PERSONAFIN_SECRET!, user.id);
 * ```
 */

/** Shortest secret accepted, in bytes. */
export const MIN_SECRET_BYTES = 16;

const encoder = new TextEncoder();

/** The pseudonym of `clientRef` under `secret` (a string, UTF-8 encoded, or bytes). */
export async function pseudonymise(secret: string | Uint8Array, clientRef: string): Promise<string> {
  const key: Uint8Array<ArrayBuffer> = typeof secret === "string" ? encoder.encode(secret) : new Uint8Array(secret);
  if (key.length < MIN_SECRET_BYTES) {
    throw new Error(`the secret has ${key.length} bytes; it needs at least ${MIN_SECRET_BYTES}`);
  }
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new Error("Web Crypto (crypto.subtle) is not available: use Node.js 19 or later, or a secure browser context");
  }
  const hmacKey = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await subtle.sign("HMAC", hmacKey, encoder.encode(clientRef)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}
