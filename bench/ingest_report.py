#!/usr/bin/env python3
"""bench/run's arithmetic: figures of one run, then the report of them all.

  ingest_report.py run --base DIR/NAME.ROUND ...   reads NAME.ROUND.json (the loadgen's
      --json line) and NAME.ROUND.log (the collector's stderr), writes NAME.ROUND.meta
      (JSON), prints a one-line summary on stderr.
  ingest_report.py report --work DIR --out FILE ...  medians over every *.meta in DIR,
      written as markdown.

Standard library only.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import statistics
import sys

STATS_RE = re.compile(r"^ts=(\S+) level=\w+ event=(stats|stats_final) (.*)$")
LEVEL_RE = re.compile(r"^ts=\S+ level=(warn|error) event=(\S+)(.*)$")

# This machine kind's measured ceilings (shared/REFERENCE-FIGURES.md, 2026-11-27),
# printed beside the results for scale.
REFERENCE = [
    ("UDP 200 B datagrams, sender + reader on loopback (recvmmsg / libuv)",
     "266k / 345k datagrams/s, sender-bound"),
    ("RocksDB put, random 16 B keys, 200 B values, WriteBatch 1000, no sync / sync per batch",
     "147k / 123k ops/s"),
    ("RocksDB put, sequential keys, no sync / sync per batch", "632k / 308k ops/s"),
    ("protobuf-c decode + free, 160 B ping", "~0.9 us"),
    ("zlib inflate, 300 -> 129 B", "~1.0 us"),
]


def parse_ts(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def parse_log(path):
    stats, final, problems = [], None, []
    if not os.path.exists(path):
        return stats, final, problems
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = STATS_RE.match(line)
            if m:
                counters = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(3))}
                entry = (parse_ts(m.group(1)), counters)
                if m.group(2) == "stats":
                    stats.append(entry)
                else:
                    final = entry
                continue
            m = LEVEL_RE.match(line)
            if m:
                problems.append(f"{m.group(1)} {m.group(2)}{m.group(3)[:160]}")
    return stats, final, problems


def processed(c):
    return c.get("pings_accepted", 0) + c.get("pings_duplicate", 0) + c.get("pings_rejected", 0)


def cmd_run(a):
    meta = {
        "scenario": a.scenario, "round": a.round, "transport": a.transport,
        "loadgen_rc": int(a.loadgen_rc), "collector_rc": int(a.collector_rc) if a.collector_rc else None,
        "command": a.command, "collector_command": a.collector_command, "issues": [],
    }
    issues = meta["issues"]
    lg = None
    try:
        with open(a.base + ".json") as f:
            lg = json.loads(f.readline())
    except (OSError, ValueError):
        issues.append("the loadgen printed no JSON report")
    if meta["loadgen_rc"] != 0:
        err = lg.get("error") if lg else None
        issues.append(f"loadgen exit {meta['loadgen_rc']}" + (f": {err}" if err else ""))
    if lg and lg.get("first_not_ok"):
        issues.append("first ack other than OK: " + lg["first_not_ok"])
    meta["loadgen"] = lg

    rate = p99 = cpu = None
    if a.transport == "sink":
        rate = lg["pings_per_s"] if lg else None
    else:
        stats, final, problems = parse_log(a.base + ".log")
        if final is None:
            issues.append("no event=stats_final in the collector's log")
        if meta["collector_rc"] not in (0, None):
            issues.append(f"collector exit {meta['collector_rc']}")
        for p in problems:
            issues.append("collector logged: " + p)
        fc = final[1] if final else {}
        meta["collector"] = fc
        dup_run = a.scenario == "tcp-dup"  # every ping is sent twice on purpose
        # UDP overload drops are reported with the UDP loss, not as an issue.
        for k in ("write_errors", "tcp_retry_later", "batches_rejected", "pings_rejected",
                  "tcp_closed_bad_frame") + (() if dup_run else ("pings_duplicate",)) + \
                (("udp_dropped_overload",) if a.transport != "udp" else ()):
            if fc.get(k):
                issues.append(f"collector {k}={fc[k]}")
        for k, v in fc.items():
            if k.startswith("rejected_") and v:
                issues.append(f"collector {k}={v}")
        busy = None
        if lg and a.transport == "tcp":
            rate = lg["pings_per_s"]
            p99 = lg["ack_latency_ms"]["p99"]
            busy = lg["elapsed_s"]
            acks = lg["acks"]
            for k in ("retry_later", "missing", "out_of_order", "count_mismatch", "rejected",
                      "partial"):
                if acks.get(k):
                    issues.append(f"loadgen acks {k}={acks[k]}")
            if dup_run:
                if lg["duplicates"] != lg["pings_sent"] or lg["accepted"]:
                    issues.append(f"a resend of {lg['pings_sent']} stored pings was acked as "
                                  f"{lg['accepted']} accepted, {lg['duplicates']} duplicates")
            else:
                if lg.get("duplicates"):
                    issues.append(f"loadgen: {lg['duplicates']} pings acked as duplicates")
                if fc and lg["accepted"] != fc.get("pings_accepted"):
                    issues.append(f"acks say {lg['accepted']} accepted, the collector counted "
                                  f"{fc.get('pings_accepted')}")
        elif lg and a.transport == "udp" and fc:
            start = lg["started_at_ms"] / 1000.0
            done_at = final[0]
            for ts, c in stats:
                if processed(c) >= processed(fc):
                    done_at = ts
                    break
            busy = max(done_at - start, 1e-3)
            rate = fc.get("pings_accepted", 0) / busy
            meta["udp_sent_per_s"] = lg["pings_per_s"]
            meta["udp_stored_fraction"] = (fc.get("pings_accepted", 0) / lg["pings_sent"]
                                           if lg["pings_sent"] else None)
            meta["udp_received_datagrams"] = fc.get("udp_datagrams")
        if busy and a.cpu_ticks:
            cpu = int(a.cpu_ticks) / os.sysconf("SC_CLK_TCK") / busy
        if fc.get("groups_committed") and not dup_run:
            meta["pings_per_group"] = fc.get("pings_accepted", 0) / fc["groups_committed"]
    meta["pings_per_s"] = rate
    meta["ack_p99_ms"] = p99
    meta["collector_cpu"] = cpu
    meta["collector_cpu_ticks"] = int(a.cpu_ticks) if a.cpu_ticks else None
    with open(a.base + ".meta", "w") as f:
        json.dump(meta, f)

    if rate is None:
        line = "FAILED"
    elif a.transport == "tcp":
        line = f"{rate:>10,.0f} pings/s  ack p99 {p99:7.1f} ms"
    elif a.transport == "udp":
        frac = meta.get("udp_stored_fraction")
        line = (f"{rate:>10,.0f} pings/s stored ({100 * frac:.0f}% of those sent at "
                f"{meta['udp_sent_per_s']:,.0f}/s)")
    else:
        line = f"{rate:>10,.0f} pings/s sent into an unread socket"
    if issues:
        line += f"  [{len(issues)} issue(s)]"
    print(line, file=sys.stderr)


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def span(values, fmt="{:,}"):
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else lo + "-" + hi


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


DESCRIPTIONS = {
    "baseline": "loadgen alone: UDP, 1 ping per datagram, into a socket nobody reads",
    "tcp-sync": "TCP, durability=sync (default), 100 pings/frame, 4 conns x 32 in flight",
    "tcp-sync-norules": "as tcp-sync, with the bundled config's [rule] sections removed",
    "tcp-async": "TCP, durability=async",
    "tcp-zlib": "TCP, sync, zlib payloads",
    "tcp-sync-inflight128": "TCP, sync, 4 conns x 128 frames in flight",
    "tcp-dup": "TCP resend of pings already stored: every ping a duplicate, nothing written "
               "(the collector's path without storage)",
    "udp": "UDP, 100 pings/datagram, as fast as the loadgen sends",
    "udp-batch1": "UDP, 1 ping/datagram (as free servers send them), as fast as possible",
}


def cmd_report(a):
    metas = []
    for path in sorted(glob.glob(os.path.join(a.work, "*.meta"))):
        with open(path) as f:
            metas.append(json.load(f))
    order = a.scenarios.split()
    by = {s: sorted([m for m in metas if m["scenario"] == s], key=lambda m: int(m["round"]))
          for s in order}
    base_by_round = {m["round"]: m["pings_per_s"] for m in by.get("baseline", [])}

    def ratio(m):
        b = base_by_round.get(m["round"])
        return m["pings_per_s"] / b if (b and m["pings_per_s"] is not None) else None

    out = []
    w = out.append
    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    w(f"# Ingest benchmark, {a.started[:10]}")
    w("")
    w(f"- started {a.started}; commit {a.git}; {a.pings:,} pings per run, {a.runs} runs per "
      "scenario, rounds interleaved; figures are medians")
    w(f"- machine: {os.cpu_count()} x {cpu_model}, kernel {platform.release()}; "
      f"load average {a.load} (the bench itself adds about 2)")
    w(f"- pinning: {a.pinning}; data directories under {a.data_fs}")
    w("- collector: Release build, bundled collector/warmline.ini, a fresh data directory per "
      "run, stats every 250 ms; loadgen: 4 connections/sockets, 10,000 installs, 2,000 orgs, "
      "batch 100 unless the command says otherwise; frames encoded before the clock starts")
    w("- ratio: the run's pings/s divided by the baseline's in the same round (median of "
      "those); it cancels part of the machine's noise, it is not an efficiency")
    w("")
    w("| scenario | median pings/s | median ack p99 | ratio vs baseline | collector CPU | "
      "pings per group commit | notes | exact command |")
    w("|---|---:|---:|---:|---:|---:|---|---|")
    for s in order:
        runs = by.get(s, [])
        if not runs:
            continue
        rate = median([m["pings_per_s"] for m in runs])
        p99 = median([m["ack_p99_ms"] for m in runs])
        rat = median([ratio(m) for m in runs]) if s != "baseline" else 1.0
        cpu = median([m["collector_cpu"] for m in runs])
        grp = median([m.get("pings_per_group") for m in runs])
        notes = DESCRIPTIONS.get(s, "")
        if runs[0]["transport"] == "udp":
            sent = median([m.get("udp_sent_per_s") for m in runs])
            frac = median([m.get("udp_stored_fraction") for m in runs])
            notes += (f"; pings/s = stored / time to store; sent at {fmt_rate(sent)}/s, "
                      f"{100 * frac:.0f}% stored" if frac is not None else "")
        n_issues = sum(len(m["issues"]) for m in runs)
        if n_issues:
            notes += f"; **{n_issues} issue(s), see below**"
        cmd = runs[0]["command"]
        if runs[0]["collector_command"]:
            cmd = runs[0]["collector_command"] + " & " + cmd
        w(f"| {s} | {fmt_rate(rate)} | {'-' if p99 is None else f'{p99:.1f} ms'} | "
          f"{'-' if rat is None else f'{rat:.3f}'} | "
          f"{'-' if cpu is None else f'{100 * cpu:.0f}%'} | {fmt_rate(grp)} | {notes} | `{cmd}` |")
    w("")
    rules = [(m["pings_per_s"], n["pings_per_s"])
             for m in by.get("tcp-sync", []) for n in by.get("tcp-sync-norules", [])
             if m["round"] == n["round"] and m["pings_per_s"] and n["pings_per_s"]]
    if rules:
        cost = median([1 - with_ / without for with_, without in rules])
        w(f"Cost of the default rules: {100 * cost:.1f}% of ingest throughput (median over rounds "
          "of 1 - tcp-sync / tcp-sync-norules, the two measured in the same round; target: "
          "under 20%).")
        w("")
    w("Collector CPU: its user+system time while the load ran, over that time (100% = one core; "
      "both its threads share CPU 0 when pinned). Pings per group commit: pings_accepted / "
      "groups_committed from event=stats_final.")
    w("")
    w("## Every run")
    w("")
    w("| scenario | round | pings/s | ack p50 | ack p99 | ratio | stored by collector | loadgen exit | "
      "collector exit |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in order:
        for m in by.get(s, []):
            lg = m.get("loadgen") or {}
            lat = lg.get("ack_latency_ms") or {}
            stored = (m.get("collector") or {}).get("pings_accepted")
            r = ratio(m)
            p50 = f"{lat['p50']:.1f} ms" if "p50" in lat else "-"
            p99 = f"{m['ack_p99_ms']:.1f} ms" if m["ack_p99_ms"] is not None else "-"
            crc = "-" if m["collector_rc"] is None else m["collector_rc"]
            w(f"| {s} | {m['round']} | {fmt_rate(m['pings_per_s'])} | {p50} | {p99} | "
              f"{'-' if r is None else f'{r:.3f}'} | {fmt_rate(stored)} | {m['loadgen_rc']} | "
              f"{crc} |")
    w("")
    w("## Issues seen")
    w("")
    any_issue = False
    for s in order:
        for m in by.get(s, []):
            for i in m["issues"]:
                w(f"- {s} round {m['round']}: {i}")
                any_issue = True
    if not any_issue:
        w("- none: every ack arrived in order and OK, the collector logged no warning or error, "
          "counted no rejection, retry or write error")
    for s in order:
        runs = [m for m in by.get(s, []) if m["transport"] == "udp" and m.get("loadgen")]
        if not runs:
            continue
        sent = [m["loadgen"]["frames_sent"] for m in runs]
        got = [(m.get("collector") or {}).get("udp_datagrams", 0) for m in runs]
        over = [(m.get("collector") or {}).get("udp_dropped_overload", 0) for m in runs]
        lost = [100 * (1 - (m.get("udp_stored_fraction") or 0)) for m in runs]
        if max(lost) < 0.1:
            continue
        w(f"- {s}: {span(lost, '{:.0f}')}% of the pings sent were not stored. Of "
          f"{max(sent):,} datagrams the collector read {span(got)}: the rest overflowed its "
          f"socket's receive queue in the kernel; it dropped {span(over)} more itself "
          "(udp_dropped_overload, writer queue full). "
          "Expected with no flow control once the sender outruns the collector; note that "
          "the kernel's drops appear in none of the collector's counters.")
    w("")
    w("## This machine kind's ceilings, for scale")
    w("")
    w("From shared/REFERENCE-FIGURES.md (measured 2026-11-27, medians of 3, pinned):")
    w("")
    for what, fig in REFERENCE:
        w(f"- {what}: {fig}")
    w("")
    with open(a.out, "w") as f:
        f.write("\n".join(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    for opt in ("base", "scenario", "round", "transport", "loadgen-rc", "collector-rc",
                "cpu-ticks", "command", "collector-command"):
        r.add_argument("--" + opt, default="")
    rep = sub.add_parser("report")
    rep.add_argument("--work", required=True)
    rep.add_argument("--out", required=True)
    rep.add_argument("--pings", type=int, required=True)
    rep.add_argument("--runs", type=int, required=True)
    for opt in ("started", "pinning", "load", "git", "scenarios", "data-fs"):
        rep.add_argument("--" + opt, default="")
    a = p.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    main()
