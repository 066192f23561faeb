/**
 * Generic clicks (opt-in, and off in the all-plugins script unless asked for): a click on a
 * button, a link or a `[role=button]` records `element.clicked` with its `tag`, `id`,
 * `aria_label` and `data-pf-*` attributes (as `data`); its text only where the page marks it,
 * or a container of it, with `data-pf-capture-text`. Elements the tracker records already
 * (`data-pf-event`) are left to it.
 *
 * ```ts
 * import { clicks } from "@personafin/capture/plugins/clicks";
 * init({ clientKey, endpoint, plugins: [clicks()] });
 * ```
 */
import type { Plugin } from "../plugin.js";
import { cut } from "./view.js";

const CLICKABLE = "button, a[href], [role=button], input[type=button], input[type=submit], input[type=reset]";

/** What a click on `el` records. */
export function clickMeta(el: Element): { [key: string]: string | { [key: string]: string } } {
  const meta: { [key: string]: string | { [key: string]: string } } = { tag: el.tagName.toLowerCase() };
  const id = el.getAttribute("id");
  const label = el.getAttribute("aria-label");
  if (id) meta.id = cut(id, 128);
  if (label) meta.aria_label = cut(label, 256);
  const data: { [key: string]: string } = {};
  for (const { name, value } of Array.from(el.attributes)) {
    if (name.startsWith("data-pf-") && name !== "data-pf-capture-text") {
      data[name.slice(8).replace(/-/g, "_")] = cut(value, 256);
    }
  }
  if (Object.keys(data).length > 0) meta.data = data;
  if (el.closest("[data-pf-capture-text]")) {
    const text = (el.textContent ?? "").replace(/\s+/g, " ").trim();
    if (text) meta.text = cut(text, 256);
  }
  return meta;
}

export function clicks(): Plugin {
  return {
    name: "clicks",
    start(tracker) {
      const clicked = (e: Event) => {
        const target = e.target;
        const el = target instanceof Element ? target.closest(CLICKABLE) : null;
        if (!el || el.closest("[data-pf-event]")) return;
        tracker.track("element", "clicked", { eventMeta: clickMeta(el) });
      };
      document.addEventListener("click", clicked, true);
      return () => document.removeEventListener("click", clicked, true);
    },
  };
}
