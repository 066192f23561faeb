/**
 * The script-tag build with every plugin (`dist/personafin.all.js`, loading `personafin.wasm`
 * from beside itself like `personafin.js`): errors, Web Vitals,
 * engagement, links and downloads, forms and campaigns are on unless the page's `init()`
 * passes `plugins` itself; generic clicks are off unless asked for. `personafin.plugins` has
 * each plugin's factory:
 *
 * ```js
 * personafin.init({ clientKey, endpoint, plugins: [personafin.plugins.errors(), personafin.plugins.clicks()] });
 * ```
 */
import { campaigns } from "./plugins/campaigns.js";
import { clicks } from "./plugins/clicks.js";
import { engagement } from "./plugins/engagement.js";
import { errors } from "./plugins/errors.js";
import { forms } from "./plugins/forms.js";
import { links } from "./plugins/links.js";
import { vitals } from "./plugins/vitals.js";
import { tag } from "./tag.js";

const plugins = { errors, vitals, engagement, links, forms, campaigns, clicks };

tag(undefined, () => [errors(), vitals(), engagement(), links(), forms(), campaigns()], { plugins });
