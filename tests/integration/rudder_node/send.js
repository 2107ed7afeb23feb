#!/usr/bin/env node
// Sends events through the official RudderStack Node SDK (@rudderstack/rudder-sdk-node, pinned
// in package.json), as a v10 server's sidecar or any Node service would, so that Warmline's
// POST /v1/batch is tested against the real client, not a copy of its wire format.
//
//   node send.js --url URL --write-key KEY [--gzip|--no-gzip] --events FILE
//                [--retries N] [--retry-delay-ms MS] [--timeout-ms MS]
//                [--flush-at N] [--one-request] [--log-level LEVEL]
//
// FILE is a JSON list of {type: "track"|"identify", event, userId, anonymousId?, properties,
// messageId?}. Every event goes through track() (identify() for "identify"), then flush().
// Exit 0 when the SDK reported every event sent (2xx); 1 when it reported an error for any of
// them or refused it (each on stderr: `send.js: failed event=N status=... message=...`, or
// `refused_by_sdk` for an event its validation refused, never sent); 2 for bad usage.
// stdout: one JSON line {"sent": N, "failed": N}. An event without messageId gets the SDK's
// (a random UUID); pass messageId to resend the same event.
// The defaults are the SDK's (gzip on, 3 retries on network errors, 5xx and 429, exponential
// delays 200/400/800 ms that honour Retry-After), except the request timeout (10 s, the Go
// client's; the SDK has none). README.md says which SDK line each option reaches.
'use strict';

const fs = require('fs');
const Analytics = require('@rudderstack/rudder-sdk-node');

const USAGE = 'usage: node send.js --url URL --write-key KEY [--gzip|--no-gzip] --events FILE\n' +
  '  [--retries N] [--retry-delay-ms MS] [--timeout-ms MS] [--flush-at N] [--one-request]\n' +
  '  [--log-level log|debug|info|warn|error|none]';

function usage(msg) {
  process.stderr.write(`send.js: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function intArg(name, value, min) {
  if (!/^\d+$/.test(value || '') || Number(value) < min) {
    usage(`${name} wants an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function parseArgs(argv) {
  const opt = { gzip: true, retries: 3, retryDelayMs: null, timeoutMs: 10000, flushAt: 20,
    oneRequest: false, logLevel: 'error' };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} wants a value`);
      i += 1;
      return argv[i];
    };
    if (a === '--url') opt.url = next();
    else if (a === '--write-key') opt.writeKey = next();
    else if (a === '--events') opt.events = next();
    else if (a === '--gzip') opt.gzip = true;
    else if (a === '--no-gzip') opt.gzip = false;
    else if (a === '--retries') opt.retries = intArg(a, next(), 0);
    else if (a === '--retry-delay-ms') opt.retryDelayMs = intArg(a, next(), 0);
    else if (a === '--timeout-ms') opt.timeoutMs = intArg(a, next(), 1);
    else if (a === '--flush-at') opt.flushAt = intArg(a, next(), 1);
    else if (a === '--one-request') opt.oneRequest = true;
    else if (a === '--log-level') opt.logLevel = next();
    else usage(`unknown argument ${JSON.stringify(a)}`);
  }
  if (!opt.url) usage('--url is required');
  if (!opt.writeKey) usage('--write-key is required (the SDK refuses an empty key)');
  if (!opt.events) usage('--events is required');
  return opt;
}

function loadEvents(path) {
  let events;
  try {
    events = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    usage(`cannot read events from ${path}: ${e.message}`);
  }
  if (!Array.isArray(events) || events.length === 0) usage(`${path}: want a non-empty JSON list`);
  events.forEach((ev, n) => {
    if (!ev || typeof ev !== 'object' || !['track', 'identify'].includes(ev.type || 'track')) {
      usage(`${path}: event ${n} is not an object of type "track" or "identify"`);
    }
  });
  return events;
}

// What an axios error (status and text) or a network error (code) says, without the key.
function describe(err) {
  if (!err) return 'unknown error';
  if (err.refused) return `refused_by_sdk message=${JSON.stringify(err.refused)}`;
  if (err.response) {
    return `status=${err.response.status} message=${JSON.stringify(err.response.statusText || '')}`;
  }
  return `code=${err.code || 'none'} message=${JSON.stringify(err.message || String(err))}`;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const events = loadEvents(opt.events);
  const sdkOptions = {
    dataPlaneUrl: opt.url,
    gzip: opt.gzip,
    retryCount: opt.retries,
    timeout: opt.timeoutMs,
    flushAt: opt.oneRequest ? events.length : opt.flushAt,
    flushInterval: 10000,
    logLevel: opt.logLevel,
    // With a handler the SDK hands each event's callback the axios error itself (status kept)
    // instead of an Error holding only the status text.
    errorHandler: () => {},
  };
  if (opt.retryDelayMs !== null) {
    sdkOptions.axiosRetryConfig = { retryDelay: () => opt.retryDelayMs };
  }
  const client = new Analytics(opt.writeKey, sdkOptions);
  if (opt.oneRequest) {
    // The SDK sends the first event of its life alone, at once (enqueue(): `if (!this.flushed)`);
    // marked as done, every event waits for the flush below and goes out in one request.
    client.flushed = true;
  }

  const results = events.map((ev) => new Promise((resolve) => {
    const { type, ...message } = ev;
    const done = (err) => resolve(err || null);
    try {
      if ((type || 'track') === 'identify') client.identify(message, done);
      else client.track(message, done);
    } catch (e) {
      // The SDK's own validation (loosely-validate-event): nothing was queued.
      resolve({ refused: e.message });
    }
  }));
  await client.flush();
  const errors = await Promise.all(results);

  let failed = 0;
  errors.forEach((err, n) => {
    if (err) {
      failed += 1;
      process.stderr.write(`send.js: failed event=${n} ${describe(err)}\n`);
    }
  });
  process.stdout.write(`${JSON.stringify({ sent: events.length - failed, failed })}\n`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`send.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
