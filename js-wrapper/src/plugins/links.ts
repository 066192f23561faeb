/**
 * Links and downloads: a click (or middle click) on a link to another host records
 * `link.clicked` with `outbound: true` and the target's `host` and `path` (never its query or
 * fragment); a link to a file — by its extension, or a `download` attribute — records
 * `file.downloaded` with `host`, `path`, `extension` and `outbound`.
 *
 * ```ts
 * import { links } from "@personafin/capture/plugins/links";
 * init({ clientKey, endpoint, plugins: [links({ extensions: ["pdf", "csv", "xlsx", "ofx"] })] });
 * ```
 */
import type { Plugin } from "../plugin.js";

export interface LinksOptions {
  /** File extensions that are downloads, lower case, without the dot. */
  extensions?: string[];
}

export const DOWNLOADS = [
  "pdf", "csv", "tsv", "xls", "xlsx", "ods", "doc", "docx", "odt", "ppt", "pptx", "txt", "rtf",
  "json", "xml", "zip", "gz", "tgz", "7z", "rar", "dmg", "exe", "msi", "pkg", "apk", "mp3", "mp4",
  "ofx", "qfx", "qif",
];

/** What a click on a link to `href` from a page on `pageHost` records, if anything. */
export function linkEvent(
  href: string,
  pageHost: string,
  download: boolean,
  extensions: readonly string[],
): [action: "link.clicked" | "file.downloaded", meta: { [key: string]: string | boolean }] | undefined {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  const outbound = url.host !== pageHost;
  const name = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  const extension = dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  if (download || (extension && extensions.includes(extension))) {
    return ["file.downloaded", { host: url.host, path: url.pathname, extension, outbound }];
  }
  return outbound ? ["link.clicked", { outbound: true, host: url.host, path: url.pathname }] : undefined;
}

export function links(options: LinksOptions = {}): Plugin {
  const extensions = (options.extensions ?? DOWNLOADS).map((e) => e.toLowerCase().replace(/^\./, ""));
  return {
    name: "links",
    start(tracker) {
      const clicked = (e: MouseEvent) => {
        if (e.type === "auxclick" && e.button !== 1) return;
        const target = e.target;
        const a = target instanceof Element ? target.closest("a[href]") : null;
        if (!(a instanceof HTMLAnchorElement)) return;
        const found = linkEvent(a.href, location.host, a.hasAttribute("download"), extensions);
        if (!found) return;
        const [name, meta] = found;
        const [type, action] = name.split(".");
        tracker.track(type, action, { eventMeta: meta });
      };
      document.addEventListener("click", clicked, true);
      document.addEventListener("auxclick", clicked, true);
      return () => {
        document.removeEventListener("click", clicked, true);
        document.removeEventListener("auxclick", clicked, true);
      };
    },
  };
}
