// One small interface over the browsers a scenario runs in: Chromium through playwright-core,
// Firefox and WebKit through selenium-webdriver, with geckodriver and WebKitGTK's
// WebKitWebDriver (Debian's and cargo-installed binaries; nothing is downloaded). Each driver
// has `goto`, `click` (a CSS selector), `run` (a function run in the page, with one JSON
// argument; a promise it returns is awaited) and `close`.
import { Builder, By, Capabilities } from "selenium-webdriver";
import firefox from "selenium-webdriver/firefox.js";
import { spawn } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";
import { launch } from "./browser.mjs";
import { freePort, waitUntil } from "./wait.mjs";

export async function chromium() {
  const browser = await launch();
  const page = await browser.newPage();
  return {
    name: "chromium",
    goto: (url) => page.goto(url),
    click: (selector) => page.click(selector),
    run: (f, arg) => page.evaluate(f, arg),
    close: () => browser.close(),
  };
}

/** The three engines, by name. */
export const engines = { chromium, firefox: firefoxEsr, webkit };

export async function firefoxEsr() {
  const options = new firefox.Options().setBinary("/usr/bin/firefox-esr").addArguments("-headless");
  const service = new firefox.ServiceBuilder(process.env.GECKODRIVER ?? join(homedir(), ".cargo/bin/geckodriver"));
  const driver = await new Builder().forBrowser("firefox").setFirefoxOptions(options).setFirefoxService(service).build();
  return {
    name: "firefox",
    goto: (url) => driver.get(url),
    click: async (selector) => driver.findElement(By.css(selector)).click(),
    run: (f, arg) => driver.executeScript(`return (${f}).apply(null, arguments)`, arg),
    close: () => driver.quit(),
  };
}

const MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

/**
 * WebKitGTK's MiniBrowser, which has no headless mode: on its own Xvfb server (on the display
 * Xvfb picks and reports once it is ready), driven by WebKitWebDriver on a free port.
 */
export async function webkit() {
  const xvfb = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"], {
    stdio: ["ignore", "ignore", "inherit", "pipe"],
  });
  const processes = [xvfb];
  const stop = () => processes.forEach((p) => p.kill());
  try {
    const display = await new Promise((resolve, reject) => {
      let text = "";
      xvfb.stdio[3].on("data", (d) => {
        text += d;
        if (text.includes("\n")) resolve(":" + text.trim());
      });
      xvfb.once("exit", (code) => reject(new Error(`Xvfb exited with ${code}`)));
    });
    const port = await freePort();
    const server = spawn("WebKitWebDriver", [`--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdio: "ignore" });
    processes.push(server);
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/status`)).ok, "WebKitWebDriver to listen");
    const capabilities = new Capabilities({
      browserName: "MiniBrowser",
      "webkitgtk:browserOptions": { binary: MINIBROWSER, args: ["--automation"] },
    });
    const driver = await new Builder().usingServer(`http://127.0.0.1:${port}`).withCapabilities(capabilities).build();
    return {
      name: "webkit",
      goto: (url) => driver.get(url),
      click: async (selector) => driver.findElement(By.css(selector)).click(),
      run: (f, arg) => driver.executeScript(`return (${f}).apply(null, arguments)`, arg),
      close: async () => {
        await driver.quit().catch(() => {});
        stop();
      },
    };
  } catch (e) {
    stop();
    throw e;
  }
}
