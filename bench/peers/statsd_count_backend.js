/* A statsd backend for bench/suite.py: after every flush it appends one JSON
 * line to config.countbackend.out with statsd's own counters of what it
 * received (statsd.packets_received, statsd.metrics_received,
 * statsd.bad_lines_seen), summed over every flush so far, and how many
 * counter keys it flushed. It ships nothing anywhere: statsd still parses,
 * aggregates and computes every flush as it would for graphite. */
'use strict';
const fs = require('fs');

exports.init = function (startupTime, config, events) {
  const out = (config.countbackend || {}).out;
  if (!out) {
    return false;
  }
  const total = {packets_received: 0, metrics_received: 0, bad_lines_seen: 0};
  const prefix = (config.prefixStats || 'statsd') + '.';
  events.on('flush', function (timestamp, metrics) {
    for (const k of Object.keys(total)) {
      total[k] += metrics.counters[prefix + k] || 0;
    }
    const line = Object.assign({ts_ms: Date.now(), counter_keys: Object.keys(metrics.counters).length}, total);
    fs.appendFileSync(out, JSON.stringify(line) + '\n');
  });
  return true;
};
