// One small interface over the browsers a scenario runs in: Chromium through playwright-core,
// Firefox through selenium-webdriver and geckodriver (the Debian and cargo-installed binaries;
// nothing is downloaded). Each driver has `goto`, `click` (a CSS selector), `run` (a function
// run in the page, with one JSON argument; a promise it returns is awaited) and `close`.
import { Builder, By } from "selenium-webdriver";
import firefox from "selenium-webdriver/firefox.js";
import { homedir } from "node:os";
import { join } from "node:path";
import { launch } from "./browser.mjs";

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
