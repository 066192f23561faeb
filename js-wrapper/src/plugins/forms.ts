/**
 * Forms: each submission records `form.submitted` with the form's `form_id` and `form_name`
 * (its `id` and `name` attributes, where set) and `fields`, how many fields it has that a
 * visitor fills in. Never a field's value or name.
 *
 * ```ts
 * import { forms } from "@personafin/capture/plugins/forms";
 * init({ clientKey, endpoint, plugins: [forms()] });
 * ```
 */
import type { Plugin } from "../plugin.js";
import { cut } from "./view.js";

/** Inputs that are not filled in. */
const NOT_FIELDS = ["submit", "button", "reset", "image", "hidden"];

/** What a form's submission records. */
export function formMeta(form: HTMLFormElement): { [key: string]: string | number } {
  const meta: { [key: string]: string | number } = {};
  // `form.id` would be an input named "id"; the attributes are the form's own.
  const id = form.getAttribute("id");
  const name = form.getAttribute("name");
  if (id) meta.form_id = cut(id, 128);
  if (name) meta.form_name = cut(name, 128);
  let fields = 0;
  for (const el of Array.from(form.elements)) {
    const tag = el.tagName;
    if (tag === "SELECT" || tag === "TEXTAREA") fields += 1;
    if (tag === "INPUT" && !NOT_FIELDS.includes((el as HTMLInputElement).type)) fields += 1;
  }
  meta.fields = fields;
  return meta;
}

export function forms(): Plugin {
  return {
    name: "forms",
    start(tracker) {
      const submitted = (e: Event) => {
        if (e.target instanceof HTMLFormElement) {
          tracker.track("form", "submitted", { eventMeta: formMeta(e.target) });
        }
      };
      document.addEventListener("submit", submitted, true);
      return () => document.removeEventListener("submit", submitted, true);
    },
  };
}
