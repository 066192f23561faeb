// The npm install path: import the package, call init() once, track() on interactions. Vite
// bundles the JS and emits the wasm file by itself; nothing to configure. A plugin is one more
// import (the code that runs plugins comes as a chunk of its own, loaded because there is one).
import { init, track } from "@personafin/capture";
import { forms } from "@personafin/capture/plugins/forms";

const params = new URLSearchParams(location.search);
let stored = 0;

init({
  clientKey: params.get("clientKey") ?? "pk_demo",
  endpoint: params.get("endpoint") ?? "http://127.0.0.1:8787/v1/events",
  clientRef: "vite-user-1",
  plugins: [forms()],
  onBatch: (result) => {
    stored += result.accepted;
    document.getElementById("stored").textContent = String(stored);
  },
})
  .then(() => (document.getElementById("status").textContent = "ready"))
  .catch((e) => (document.getElementById("status").textContent = `failed: ${e.message}`));

document.getElementById("view-msft").addEventListener("click", () =>
  track("instrument", "viewed", { relatedEntities: ["ticker:MSFT"], eventMeta: { surface: "watchlist" } }),
);
