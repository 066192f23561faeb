// The wire-format fixtures of schema/fixtures, posted to a real ingest: what the Rust
// validator accepts or rejects is what the service answers over HTTP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { startIngest } from "../../tests/support/ingest.mjs";

const fixtures = new URL("../../schema/fixtures/", import.meta.url);
const read = (path) => readFileSync(new URL(path, fixtures), "utf8");
let ingest;

before(async () => {
  ingest = await startIngest({ tenants: [{ clientKey: "pk_fixture" }] });
});
after(() => ingest?.stop());

async function post(body, contentType = "text/plain;charset=UTF-8") {
  const res = await fetch(ingest.endpoint, { method: "POST", headers: { "content-type": contentType }, body });
  return { status: res.status, body: await res.json() };
}

test("valid fixture batches are stored whole", async () => {
  let total = 0;
  for (const name of readdirSync(new URL("valid/", fixtures)).sort()) {
    const body = read(`valid/${name}`);
    const count = JSON.parse(body).events.length;
    const answer = await post(body);
    assert.equal(answer.status, 200, name);
    assert.deepEqual(answer.body, { accepted: count, duplicates: 0, rejected: [] }, name);
    total += count;
  }
  assert.equal(ingest.events("pk_fixture").length, total);
  const again = await post(read("valid/minimal.json"), "application/json");
  assert.deepEqual(again.body, { accepted: 0, duplicates: 1, rejected: [] });
});

test("each invalid event is rejected with its rule and field, the valid ones kept", async () => {
  const cases = JSON.parse(read("invalid/events.json"));
  const good = JSON.parse(read("valid/minimal.json")).events[0];
  const events = [{ ...good, event_id: "js-good" }, ...cases.map((c) => c.event)];
  const answer = await post(JSON.stringify({ events }));
  assert.equal(answer.status, 200);
  assert.equal(answer.body.accepted, 1);
  assert.equal(answer.body.rejected.length, cases.length);
  cases.forEach((c, i) => {
    const r = answer.body.rejected[i];
    assert.equal(r.index, i + 1, c.name);
    assert.equal(r.error, c.error, c.name);
    if (c.field) assert.match(r.message, new RegExp(`\`${c.field.replace(/[[\].]/g, "\\$&")}\``), c.name);
  });
  const failed = ingest.failedEvents("pk_fixture");
  assert.deepEqual(failed.map((f) => f.error), cases.map((c) => c.error));
});

test("invalid batches are answered 400 with a code and a message", async () => {
  for (const c of JSON.parse(read("invalid/batches.json"))) {
    const answer = await post(c.body, "application/json");
    assert.equal(answer.status, 400, c.name);
    assert.equal(answer.body.error, c.error, c.name);
    assert.ok(answer.body.message.length > 0, c.name);
  }
});
