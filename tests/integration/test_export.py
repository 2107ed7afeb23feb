"""warmline export end to end: every table in both formats read back with
Python's gzip, csv and json modules and compared row by row with what went
in (and with `warmline dump`); a cursor's runs are disjoint and leave no gap,
--max-rows splits files; a crash between the data files and the manifest
(the WL_EXPORT_CRASH_* test hooks, _exit(9)) is repaired by the next run with
byte-identical files; an export during live ingest sees a contiguous range;
bad arguments exit 2 and write nothing.

Export schema 2 (issue 13): pings from the HTTP edge (a security check, Rudder
events) carry source and presence, wire pings source "wire" and presence null;
an install's state rebuilt from the rows (presence names what an edge row
replaces) is the collector's own; a directory a schema-1 run wrote goes on
after its cursor in schema 2, its files untouched, and a schema-1 file left
without its manifest is written again in schema 2.

Issue 15: daily and accounts come from the state records, which the
collector writes at checkpoints; their manifests name the checkpoint
(checkpoint_seq, checkpoint_at: what `warmline dump state` says), and a run
between checkpoints leaves for the next run what the records do not hold yet,
so a cursor never passes a row a later checkpoint (a clean stop, the replay
after a SIGKILL) writes: each arrives once."""

import csv
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

from harness import (CLI_BIN, IO_TIMEOUT, CollectorCase, as_int, dump, make_ping, run_import,
                     wait_until)
from rudder_sdk import (INSTALL, activity_props, configs_props, go_batch, go_track,
                        license_props, post, server_props)
from test_http_ingest import HttpCollector, go_check, go_query

MINUTE = 60 * 1000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
BASE = 1735689600000            # 2025-01-01T00:00:00Z
BASE_DAY = BASE // DAY
N_DAYS = 4
HALF_LIFE = 14 * DAY            # [accounts] score_half_life_ms of the bundled config
SCORE_EPOCH = 1577836800000     # WL_SCORE_EPOCH_MS (collector/rules.h)

K1 = hashlib.sha256(b"warmline export test org one").hexdigest()
K2 = hashlib.sha256(b"warmline export test org two").hexdigest()
K3 = hashlib.sha256(b"warmline export test org three").hexdigest()

COUNTS = ("registered_users", "active_users_daily", "active_users_monthly", "bot_accounts",
          "guest_accounts", "teams", "public_channels", "private_channels",
          "direct_message_channels", "posts_previous_day", "incoming_webhooks",
          "outgoing_webhooks", "slash_commands", "system_admins", "posts")
STRINGS = ("version", "edition", "database_type", "operating_system", "installation_type")

# The documented columns of export schema 2 (README section "Exports for data
# engineers"): schema 1 had the same but for the pings' source and presence.
SCHEMA = 2
COLUMNS = {
    "pings": ["ingest_seq", "received_at", "event_at", "org", "source", "presence",
              "install_id", "org_key", "seq", "sent_at"] + list(STRINGS) + list(COUNTS) +
             ["features"],
    "signals": ["id", "org", "rule", "description", "weight", "fired_at", "fired_at_iso",
                "terms", "install_ids", "ingest_seq"],
    "daily": ["org", "day", "date", "installs", "installs_total"] + list(COUNTS),
    "accounts": ["snapshot_seq", "as_of", "org", "install_ids", "installs_total",
                 "installs_counting", "first_seen", "last_seen"] + list(COUNTS) +
                ["versions", "editions", "features", "signals", "score", "score_log2", "day",
                 "updated_at"],
}
SEQ_COLUMN = {"pings": "ingest_seq", "signals": "id"}


def at(day, minute):
    return BASE + day * DAY + 10 * HOUR + minute * MINUTE


def history():
    """A few days of imported history: strings that CSV must quote, unicode,
    an organization that is an install, features; the bundled rules fire
    mau_over_25, second_install and sso_interest."""
    out = []
    for d in range(N_DAYS):
        out.append(dict(install_id="h-a1", org_key=K1, seq=d + 1, sent_at=at(d, 0),
                        version='9.1,"beta"', edition="team", database_type="postgres",
                        operating_system="linux", installation_type="docker",
                        registered_users=60, active_users_daily=8, active_users_monthly=30,
                        teams=1, public_channels=10, posts=5000 + d))
        if d >= 1:
            out.append(dict(install_id="h-a2", org_key=K1, seq=100 + d, sent_at=at(d, 1),
                            version="9.2", edition="enterprise", registered_users=5,
                            active_users_monthly=3))
        out.append(dict(install_id="h-b1", seq=(1 << 62) + d, sent_at=at(d, 2),
                        version="10.0", operating_system="l\u00ednux\nnew line",
                        installation_type="tar \\ back", edition="team",
                        features=["saml_configured", "emoji \u2713", "a,b"],
                        registered_users=3, active_users_monthly=2))
        out.append(dict(install_id="h-c1", org_key=K2, seq=d + 1, sent_at=at(d, 3),
                        version="8", edition="free", posts=9999999, system_admins=2))
    out.sort(key=lambda p: p["sent_at"])
    return out


def run_export(data_dir, table, fmt, out, *extra, env=None, config=None, timeout=120):
    argv = [CLI_BIN, "export", "--data-dir", data_dir, "--table", table, "--format", fmt,
            "--out", out]
    if config is not None:
        argv += ["--config", config]
    argv += list(extra)
    e = dict(os.environ)
    for k in ("WL_EXPORT_CRASH_BEFORE_MANIFEST", "WL_EXPORT_CRASH_AFTER_FILES",
              "WL_EXPORT_AS_OF_MS"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=e)


def manifests(out, table, cursor=None):
    """The manifests of table (and cursor; None: ad hoc) in out, by first."""
    found = []
    if not os.path.isdir(out):
        return found
    for name in os.listdir(out):
        if not (name.startswith("manifest-") and name.endswith(".json")):
            continue
        parts = name[len("manifest-"):-len(".json")].split("-")
        if parts[0] != table:
            continue
        if (cursor is None) != (len(parts) == 3) or (cursor is not None and parts[1] != cursor):
            continue
        with open(os.path.join(out, name)) as f:
            m = json.load(f)
        m["_name"] = name
        found.append(m)
    return sorted(found, key=lambda m: m["first"])


def remove_secondary_dirs(data_dir):
    """Removes the temporary directories of RocksDB secondary instances of
    data_dir that a killed process left in /tmp (storage/store.c names them
    /tmp/warmline-secondary-XXXXXX; their info LOG names the primary). Call
    it only when no other process has data_dir open as a secondary."""
    pattern = re.compile(re.escape(data_dir) + r"\b")
    for name in os.listdir("/tmp"):
        d = os.path.join("/tmp", name)
        if not name.startswith("warmline-secondary-") or not os.path.isdir(d):
            continue
        try:
            with open(os.path.join(d, "LOG"), errors="replace") as f:
                mine = pattern.search(f.read(1 << 16)) is not None
        except OSError:
            continue
        if mine:
            shutil.rmtree(d, ignore_errors=True)


def dump_state(data_dir):
    """`warmline dump state`: where the state records' checkpoint stands."""
    r = subprocess.run([CLI_BIN, "dump", "state", "--data-dir", data_dir],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("warmline dump state: exit %d: %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def csv_cell_matches(cell, value):
    """A CSV field against the NDJSON value of the same cell."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, int):
        return cell == str(value)
    if isinstance(value, float):
        return float(cell) == value
    if isinstance(value, str):
        return cell == value
    return json.loads(cell) == value


class ExportCase(CollectorCase):
    test_timeout = 120

    def setUp(self):
        super().setUp()
        self.require_dump()

    def export(self, table, fmt, out, *extra, ok=True, **kw):
        kw.setdefault("config", self.c.ini_path)
        r = run_export(self.c.data_dir, table, fmt, out, *extra, **kw)
        if ok:
            self.assertEqual(r.returncode, 0, "export %s %s: exit %d\nstdout: %s\nstderr: %s"
                             % (table, fmt, r.returncode, r.stdout, r.stderr))
        return r

    def load(self, out, m):
        """Rows of one manifest's files, checked against it: names, sizes,
        sha256, row counts, ranges, header, key order."""
        self.assertEqual(m["schema_version"], SCHEMA)
        self.assertEqual(m["compression"], "gzip")
        self.assertEqual(m["columns"], COLUMNS[m["table"]])
        rows = []
        seq_col = SEQ_COLUMN.get(m["table"])
        prev_last = m["first"] - 1
        for i, f in enumerate(m["files"]):
            with open(os.path.join(out, f["name"]), "rb") as fh:
                data = fh.read()
            self.assertEqual(len(data), f["bytes"], f["name"])
            self.assertEqual(hashlib.sha256(data).hexdigest(), f["sha256"], f["name"])
            self.assertEqual(data[4:8], b"\0\0\0\0", "gzip mtime is 0")
            text = gzip.decompress(data).decode("utf-8")
            if m["format"] == "ndjson":
                self.assertTrue(text.endswith("\n") or text == "")
                got = [json.loads(line) for line in text.split("\n")[:-1]]
                for r in got:
                    self.assertEqual(list(r), m["columns"])
            else:
                self.assertTrue(text.startswith(",".join(m["columns"]) + "\r\n"))
                table = list(csv.reader(io.StringIO(text, newline="")))
                self.assertEqual(table[0], m["columns"])
                got = [dict(zip(table[0], r)) for r in table[1:]]
                for r in table[1:]:
                    self.assertEqual(len(r), len(m["columns"]))
            self.assertEqual(len(got), f["rows"], f["name"])
            if seq_col is not None:
                # Each file covers its own sub-range; the ranges tile the run's.
                self.assertEqual(f["first"], prev_last + 1, f["name"])
                prev_last = f["last"]
                for r in got:
                    self.assertTrue(f["first"] <= int(r[seq_col]) <= f["last"], (f, r[seq_col]))
            else:
                self.assertEqual((f["first"], f["last"], f["part"]), (m["first"], m["last"], i + 1))
            rows.extend(got)
        if seq_col is not None and m["files"]:
            self.assertEqual(prev_last, m["last"])
        self.assertEqual(len(rows), m["rows"])
        return rows

    def assertNoTemps(self, out):
        self.assertEqual([n for n in os.listdir(out) if n.endswith(".tmp")], [])


# --------------------------------------------------------------------------

class RoundTrip(ExportCase):
    """Imported history plus live TCP pings, every table in both formats."""

    def setUp(self):
        super().setUp()
        # A checkpoint with every group: the state records hold every live
        # ping, so that accounts and daily can be compared with the input.
        self.c = self.collector({"checkpoint_pings": 1}, start=False, name="roundtrip")
        self.hist = history()
        path = os.path.join(self.c.root, "history.ndjson")
        with open(path, "w") as f:
            for p in self.hist:
                f.write(json.dumps(p) + "\n")
        r = run_import(path, self.c.data_dir, config=self.c.ini_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.start()
        self.live = [make_ping("live-1", s, org_key=bytes.fromhex(K1), active_users_monthly=40,
                               features=["ldap_configured"]) for s in (1, 2, 3)]
        self.live += [make_ping("live-2", s, org_key=bytes.fromhex(K3), teams=7) for s in (1, 2)]
        with self.client(self.c) as cl:
            ack = cl.request(self.live, batch_id=1)
            self.assertAck(ack, "OK", accepted=len(self.live))
        self.out = os.path.join(self.c.root, "out")

    def input_by_key(self):
        want = {}
        for p in self.hist:
            want[(p["install_id"], p["seq"])] = dict(p, _event=p["sent_at"])
        for p in self.live:
            d = {"install_id": p.install_id, "seq": p.seq, "org_key": p.org_key.hex(),
                 "sent_at": p.sent_at, "features": list(p.features)}
            for k in STRINGS + COUNTS:
                d[k] = getattr(p, k)
            want[(p.install_id, p.seq)] = d
        return want

    def test_every_table_both_formats(self):
        as_of = str(int(time.time() * 1000))  # one clock for both formats
        env = {"WL_EXPORT_AS_OF_MS": as_of}
        rows = {}
        for fmt in ("ndjson", "csv"):
            out = os.path.join(self.out, fmt)
            for table in ("pings", "signals", "daily", "accounts"):
                self.export(table, fmt, out, "--cursor", "wh", env=env)
                ms = manifests(out, table, "wh")
                self.assertEqual(len(ms), 1, (table, fmt, os.listdir(out)))
                self.assertEqual((ms[0]["table"], ms[0]["format"], ms[0]["cursor"]),
                                 (table, fmt, "wh"))
                rows[(table, fmt)] = (ms[0], self.load(out, ms[0]))
            self.assertNoTemps(out)

        # pings: every field against what went in, and against dump.
        m, got = rows[("pings", "ndjson")]
        dumped = {as_int(p["ingest_seq"]): p for p in dump("pings", self.c.data_dir)}
        want = self.input_by_key()
        self.assertEqual(len(got), len(want))
        self.assertEqual([r["ingest_seq"] for r in got], list(range(1, len(want) + 1)))
        self.assertEqual((m["first"], m["last"], m["sequence"]), (1, len(want), "ingest_seq"))
        orgs_of = {K1: K1, K2: K2, K3: K3}
        for r in got:
            with self.subTest(ingest_seq=r["ingest_seq"]):
                w = want[(r["install_id"], r["seq"])]
                d = dumped[r["ingest_seq"]]
                self.assertEqual(r["received_at"], as_int(d["received_at"]))
                self.assertEqual(r["org"], d["org"])
                self.assertEqual((r["source"], r["presence"]), ("wire", None))
                key = w.get("org_key", "")
                self.assertEqual(r["org_key"], key)
                self.assertEqual(r["org"], orgs_of[key] if key else "install:" + w["install_id"])
                self.assertEqual(r["sent_at"], w["sent_at"])
                # Event time: sent_at when imported, the receive time when live.
                self.assertEqual(r["event_at"], w.get("_event", r["received_at"]))
                for k in STRINGS:
                    self.assertEqual(r[k], w.get(k, ""), k)
                for k in COUNTS:
                    self.assertEqual(r[k], w.get(k, 0), k)
                self.assertEqual(r["features"], w.get("features", []))
                for k in d:
                    if k in r:
                        self.assertEqual(r[k], as_int(d[k]) if isinstance(r[k], int) else d[k], k)

        # signals: exactly the dump's objects.
        m, got = rows[("signals", "ndjson")]
        want_sig = dump("signals", self.c.data_dir)
        self.assertGreaterEqual(len(want_sig), 4)
        self.assertEqual(got, want_sig)
        self.assertEqual((m["first"], m["last"], m["sequence"]), (1, len(want_sig), "signal_id"))
        self.assertEqual({s["rule"] for s in got} >= {"mau_over_25", "second_install",
                                                      "sso_interest"}, True)

        # daily: the dump's rows of complete days (today's live rows are not).
        m, got = rows[("daily", "ndjson")]
        today = int(as_of) // DAY
        last_complete = (int(as_of) - HOUR) // DAY - 1
        self.assertEqual((m["first"], m["last"], m["sequence"]), (0, last_complete, "utc_day"))
        self.assertEqual(m["as_of"], int(as_of))
        want_daily = []
        for d in dump("daily", self.c.data_dir):
            if d["day"] <= last_complete:
                flat = {"org": d["org"], "day": d["day"], "date": d["date"],
                        "installs": d["installs"], "installs_total": d["installs_total"]}
                flat.update({k: as_int(d["totals"][k]) for k in COUNTS})
                want_daily.append(flat)
        self.assertEqual(sorted(got, key=lambda r: (r["org"], r["day"])),
                         sorted(want_daily, key=lambda r: (r["org"], r["day"])))
        self.assertEqual(len(got), 3 * N_DAYS)  # K1, K2 and install:h-b1 on every history day
        self.assertFalse([r for r in got if r["day"] >= today])

        # accounts: against dump orgs, the score from score_log2 as of as_of.
        m, got = rows[("accounts", "ndjson")]
        self.assertEqual(m["as_of"], int(as_of))
        # daily and accounts name the checkpoint the state records are from.
        st = dump_state(self.c.data_dir)
        self.assertEqual(st["checkpoint_seq"], len(want))
        for table in ("daily", "accounts"):
            for fmt in ("ndjson", "csv"):
                mt = rows[(table, fmt)][0]
                self.assertEqual((mt["checkpoint_seq"], mt["checkpoint_at"],
                                  mt["checkpoint_at_iso"]),
                                 (st["checkpoint_seq"], st["checkpoint_at"],
                                  st["checkpoint_at_iso"]), (table, fmt))
        self.assertNotIn("checkpoint_seq", rows[("pings", "ndjson")][0])
        self.assertEqual((m["first"], m["last"]), (1, len(want)))
        want_orgs = {o["org"]: o for o in dump("orgs", self.c.data_dir)}
        self.assertEqual(sorted(r["org"] for r in got), sorted(want_orgs))
        for r in got:
            with self.subTest(account=r["org"]):
                o = want_orgs[r["org"]]
                self.assertEqual((r["snapshot_seq"], r["as_of"]), (len(want), int(as_of)))
                self.assertEqual(r["install_ids"], o["install_ids"])
                self.assertEqual(r["installs_total"], len(o["install_ids"]))
                for k in ("installs_counting", "first_seen", "last_seen", "versions", "editions",
                          "features", "day", "updated_at"):
                    self.assertEqual(r[k], o[k], k)
                self.assertEqual(r["signals"], as_int(o["signals"]))
                self.assertEqual({k: r[k] for k in COUNTS},
                                 {k: as_int(o["totals"][k]) for k in COUNTS})
                if o["score_log2"] is None:
                    self.assertIsNone(r["score_log2"])
                    self.assertEqual(r["score"], 0)
                else:
                    self.assertAlmostEqual(r["score_log2"], o["score_log2"], places=9)
                    want_score = 2.0 ** (r["score_log2"] - (int(as_of) - SCORE_EPOCH) / HALF_LIFE)
                    self.assertGreater(r["score"], 0)
                    self.assertLess(abs(r["score"] - want_score), 1e-9 * want_score,
                                    (r["score"], want_score))

        # CSV: the same rows, cell by cell.
        for table in ("pings", "signals", "daily", "accounts"):
            nd, cs = rows[(table, "ndjson")][1], rows[(table, "csv")][1]
            self.assertEqual(len(nd), len(cs), table)
            for a, b in zip(nd, cs):
                for col in COLUMNS[table]:
                    self.assertTrue(csv_cell_matches(b[col], a[col]),
                                    "%s.%s: csv %r, ndjson %r" % (table, col, b[col], a[col]))
            mn, mc = rows[(table, "ndjson")][0], rows[(table, "csv")][0]
            self.assertEqual((mn["first"], mn["last"], mn["rows"]),
                             (mc["first"], mc["last"], mc["rows"]))
        # The quoting cases are there.
        csv_pings = rows[("pings", "csv")][1]
        self.assertIn('9.1,"beta"', [r["version"] for r in csv_pings])
        self.assertIn("l\u00ednux\nnew line", [r["operating_system"] for r in csv_pings])

    def test_dry_run_writes_nothing(self):
        r = self.export("pings", "ndjson", self.out, "--max-rows", "10", "--dry-run")
        self.assertFalse(os.path.exists(self.out))
        n = len(self.hist) + len(self.live)
        self.assertIn("would write pings-default-000000000001-000000000010.ndjson.gz: 10 rows",
                      r.stdout)
        self.assertIn("would write manifest-pings-default-000000000001-%012d.json" % n, r.stdout)
        self.assertIn("%d rows in %d file(s)" % (n, (n + 9) // 10), r.stdout)
        os.makedirs(self.out)
        for table in ("signals", "daily", "accounts"):
            self.export(table, "csv", self.out, "--dry-run")
        self.assertEqual(os.listdir(self.out), [])


class Incremental(ExportCase):
    """A cursor's runs over a live collector: disjoint, no gap."""

    def send(self, cl, install, seqs, batch_id):
        ack = cl.request([make_ping(install, s, org_key=bytes.fromhex(K2)) for s in seqs],
                         batch_id=batch_id)
        self.assertAck(ack, "OK", accepted=len(seqs))

    def test_two_runs_disjoint_and_max_rows(self):
        self.c = self.collector(name="incremental")
        out = os.path.join(self.c.root, "out")
        with self.client(self.c) as cl:
            self.send(cl, "inc-1", range(1, 26), 1)
            r = self.export("pings", "ndjson", out, "--cursor", "etl", "--max-rows", "10")
            self.assertIn("cursor etl of pings is new", r.stderr)
            ms = manifests(out, "pings", "etl")
            self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, 25)])
            self.assertEqual([(f["first"], f["last"], f["rows"]) for f in ms[0]["files"]],
                             [(1, 10, 10), (11, 20, 10), (21, 25, 5)])
            self.assertEqual(ms[0]["files"][0]["name"],
                             "pings-etl-000000000001-000000000010.ndjson.gz")
            first = self.load(out, ms[0])

            self.send(cl, "inc-1", range(26, 43), 2)
            self.export("pings", "ndjson", out, "--cursor", "etl", "--max-rows", "10")
            ms = manifests(out, "pings", "etl")
            self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, 25), (26, 42)])
            self.assertEqual([(f["first"], f["last"], f["rows"]) for f in ms[1]["files"]],
                             [(26, 35, 10), (36, 42, 7)])
            second = self.load(out, ms[1])
            seqs = [r["ingest_seq"] for r in first + second]
            self.assertEqual(seqs, list(range(1, 43)), "every row once, no gap")
            self.assertEqual([r["seq"] for r in first + second], list(range(1, 43)))

            # Nothing new: exit 0, nothing written.
            before = sorted(os.listdir(out))
            r = self.export("pings", "ndjson", out, "--cursor", "etl")
            self.assertIn("nothing to export", r.stdout)
            self.assertEqual(sorted(os.listdir(out)), before)

            # Another cursor starts from the beginning; ad hoc ranges have no cursor.
            self.export("pings", "csv", out, "--cursor", "other")
            self.assertEqual([(m["first"], m["last"]) for m in manifests(out, "pings", "other")],
                             [(1, 42)])
            r = self.export("pings", "csv", out, "--since", "5", "--until", "1000")
            self.assertIn("--until 1000 is past what the store holds", r.stderr)
            adhoc = manifests(out, "pings", None)
            self.assertEqual([(m["first"], m["last"], m["cursor"]) for m in adhoc],
                             [(5, 42, None)])
            self.assertEqual([int(r["ingest_seq"]) for r in self.load(out, adhoc[0])],
                             list(range(5, 43)))
            self.assertIn("pings-000000000005-000000000042.csv.gz", os.listdir(out))
            # ... and move no cursor.
            self.send(cl, "inc-1", range(43, 45), 3)
            self.export("pings", "ndjson", out, "--cursor", "etl", "--max-rows", "10")
            self.assertEqual([(m["first"], m["last"]) for m in manifests(out, "pings", "etl")],
                             [(1, 25), (26, 42), (43, 44)])

    def test_signals_daily_accounts_cursors(self):
        # A checkpoint with every group: accounts follow the checkpoint.
        self.c = self.collector({"checkpoint_pings": 1}, start=False, name="tables")
        path = os.path.join(self.c.root, "history.ndjson")
        hist = history()
        with open(path, "w") as f:
            for p in hist:
                f.write(json.dumps(p) + "\n")
        r = run_import(path, self.c.data_dir, config=self.c.ini_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = os.path.join(self.c.root, "out")

        # daily: complete days only, by the export's clock.
        def as_of(day, hours):
            return {"WL_EXPORT_AS_OF_MS": str(int(BASE + day * DAY + hours * HOUR))}
        self.export("daily", "csv", out, "--cursor", "d", env=as_of(2, 0.5))  # day 1 not yet
        self.export("daily", "csv", out, "--cursor", "d", env=as_of(2, 1.5))
        self.export("daily", "csv", out, "--cursor", "d", env=as_of(3, 2))
        r = self.export("daily", "csv", out, "--cursor", "d", env=as_of(3, 5))
        self.assertIn("nothing to export", r.stdout)
        self.export("daily", "csv", out, "--cursor", "d", env=as_of(30, 0))
        ms = manifests(out, "daily", "d")
        self.assertEqual([(m["first"], m["last"]) for m in ms],
                         [(0, BASE_DAY), (BASE_DAY + 1, BASE_DAY + 1),
                          (BASE_DAY + 2, BASE_DAY + 2), (BASE_DAY + 3, BASE_DAY + 28)])
        days = [[int(r["day"]) for r in self.load(out, m)] for m in ms]
        self.assertEqual([sorted(set(d)) for d in days],
                         [[BASE_DAY], [BASE_DAY + 1], [BASE_DAY + 2], [BASE_DAY + 3]])
        self.assertEqual(sum(len(d) for d in days), len(dump("daily", self.c.data_dir)))
        self.assertEqual(ms[0]["files"][0]["name"],
                         "daily-d-000000000000-%012d-0001.csv.gz" % BASE_DAY)
        # --max-rows makes parts of one range.
        self.export("daily", "ndjson", out, "--since", "2025-01-01", "--until", str(BASE_DAY + 3),
                    "--max-rows", "5", env=as_of(30, 0))
        adhoc = manifests(out, "daily", None)
        self.assertEqual([(f["part"], f["rows"]) for f in adhoc[0]["files"]],
                         [(1, 5), (2, 5), (3, 2)])
        self.assertEqual(len(self.load(out, adhoc[0])), 3 * N_DAYS)

        # signals: by id.
        self.export("signals", "ndjson", out, "--cursor", "s", "--max-rows", "2")
        ms = manifests(out, "signals", "s")
        got = self.load(out, ms[0])
        self.assertEqual(got, dump("signals", self.c.data_dir))
        self.assertEqual([(f["first"], f["last"]) for f in ms[0]["files"]][:2], [(1, 2), (3, 4)])

        # accounts: a snapshot per run, named by the ingest_seq it takes in.
        self.export("accounts", "ndjson", out, "--cursor", "a")
        r = self.export("accounts", "ndjson", out, "--cursor", "a")
        self.assertIn("nothing to export", r.stdout)
        self.c.start()
        with self.client(self.c) as cl:
            self.send(cl, "acc-1", [1, 2], 1)
        self.export("accounts", "ndjson", out, "--cursor", "a")
        ms = manifests(out, "accounts", "a")
        n = len(hist)
        self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, n), (n + 1, n + 2)])
        self.assertEqual(ms[1]["files"][0]["name"],
                         "accounts-a-%012d-%012d-0001.ndjson.gz" % (n + 1, n + 2))
        snap = self.load(out, ms[1])
        self.assertEqual({r["snapshot_seq"] for r in snap}, {n + 2})
        self.assertEqual(len(snap), len(dump("orgs", self.c.data_dir)))


class Checkpoints(ExportCase):
    """daily and accounts come from the state records, which the collector
    writes only at checkpoints (issue 15): an export between checkpoints
    leaves for the next run what the records do not hold yet, and the next
    run after a checkpoint exports it, once. Before this, both cursors went
    past rows a later checkpoint wrote, and those rows were never exported."""

    def send(self, cl, install, seqs, batch_id, key=K1):
        ack = cl.request([make_ping(install, s, org_key=bytes.fromhex(key)) for s in seqs],
                         batch_id=batch_id)
        self.assertAck(ack, "OK", accepted=len(seqs))

    def assertCheckpoint(self, m, st):
        self.assertEqual((m["checkpoint_seq"], m["checkpoint_at"], m["checkpoint_at_iso"]),
                         (st["checkpoint_seq"], st["checkpoint_at"], st["checkpoint_at_iso"]))

    def test_accounts_after_a_later_checkpoint(self):
        self.c = self.collector({"checkpoint_interval_ms": "1h"}, name="acc")
        out = os.path.join(self.c.root, "out")
        with self.client(self.c) as cl:
            self.send(cl, "ck-1", [1, 2, 3], 1)
        # The records hold no checkpoint of these pings yet: nothing to export.
        r = self.export("accounts", "ndjson", out, "--cursor", "a")
        self.assertIn("nothing to export", r.stdout)
        self.assertIn("state_seq=0 at (time not recorded); 3 pings stored since wait for the "
                      "next checkpoint", r.stderr)
        self.assertEqual(manifests(out, "accounts", "a"), [])

        self.c.stop()  # the checkpoint
        st = dump_state(self.c.data_dir)
        self.assertEqual((st["checkpoint_seq"], st["pings_after_checkpoint"]), (3, 0))
        self.export("accounts", "ndjson", out, "--cursor", "a")
        r = self.export("accounts", "ndjson", out, "--cursor", "a")
        self.assertIn("nothing to export", r.stdout)
        ms = manifests(out, "accounts", "a")
        self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, 3)])
        self.assertCheckpoint(ms[0], st)
        snap = self.load(out, ms[0])
        self.assertEqual([(r["org"], r["snapshot_seq"], r["install_ids"]) for r in snap],
                         [(K1, 3, ["ck-1"])])

        # More pings, then a crash in the middle of the window: the records
        # are as of 3; the replay at the next start checkpoints them.
        self.c.start()
        with self.client(self.c) as cl:
            self.send(cl, "ck-1", [4], 2)
            self.send(cl, "ck-2", [1], 3, key=K2)
        r = self.export("accounts", "ndjson", out, "--cursor", "a")
        self.assertIn("nothing to export", r.stdout)
        self.c.kill()
        r = self.export("accounts", "ndjson", out, "--cursor", "a")
        self.assertIn("nothing to export", r.stdout)
        self.assertIn("; 2 pings stored since wait for the next checkpoint", r.stderr)
        self.c.start()
        self.assertEqual(as_int(self.c.writer_started()["replayed"]), 2)
        st = dump_state(self.c.data_dir)
        self.assertEqual(st["checkpoint_seq"], 5)
        self.export("accounts", "ndjson", out, "--cursor", "a")
        ms = manifests(out, "accounts", "a")
        self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, 3), (4, 5)])
        self.assertCheckpoint(ms[1], st)
        snap = {r["org"]: r for r in self.load(out, ms[1])}
        self.assertEqual(sorted(snap), sorted([K1, K2]))
        self.assertEqual({r["snapshot_seq"] for r in snap.values()}, {5})
        self.assertEqual((snap[K1]["install_ids"], snap[K2]["install_ids"]),
                         (["ck-1"], ["ck-2"]))

    def test_daily_after_a_later_checkpoint(self):
        self.c = self.collector({"checkpoint_interval_ms": "1h"}, name="daily")
        out = os.path.join(self.c.root, "out")
        with self.client(self.c) as cl:
            self.send(cl, "cd-1", [1, 2], 1)
            self.send(cl, "cd-2", [1], 2, key=K2)
        # Two days on, today is complete by the clock, not in the records:
        # the run stops before it.
        env = {"WL_EXPORT_AS_OF_MS": str(int(time.time() * 1000) + 2 * DAY)}
        first_at = min(as_int(p["received_at"]) for p in dump("pings", self.c.data_dir))
        # days that ended an hour (the grace) before the first ping the
        # checkpoint does not hold: yesterday too, in the first hour of a day
        last_whole = (first_at - HOUR) // DAY - 1
        r = self.export("daily", "csv", out, "--cursor", "d", env=env)
        ms = manifests(out, "daily", "d")
        self.assertEqual([(m["first"], m["last"], m["rows"]) for m in ms],
                         [(0, last_whole, 0)])
        self.assertIn("3 pings stored since wait for the next checkpoint", r.stderr)

        self.c.stop()  # the checkpoint writes today's rows
        st = dump_state(self.c.data_dir)
        want = sorted((d["org"], d["day"]) for d in dump("daily", self.c.data_dir))
        self.assertEqual({o for o, _ in want}, {K1, K2})
        self.export("daily", "csv", out, "--cursor", "d", env=env)
        r = self.export("daily", "csv", out, "--cursor", "d", env=env)
        self.assertIn("nothing to export", r.stdout)
        ms = manifests(out, "daily", "d")
        self.assertEqual(len(ms), 2)
        self.assertEqual(ms[1]["first"], last_whole + 1)
        self.assertCheckpoint(ms[1], st)
        got = [row for m in ms for row in self.load(out, m)]
        self.assertEqual(sorted((r["org"], int(r["day"])) for r in got), want,
                         "every organization-day once")
        self.assertEqual({int(r["installs_total"]) for r in got if r["org"] == K1}, {1})


class CrashRecovery(ExportCase):
    """A run that dies after its data files and before its manifest."""

    def setUp(self):
        super().setUp()
        self.c = self.collector(name="crash")
        self.cl = self.client(self.c)
        self.batch = 0
        self.sent = 0
        self.out = os.path.join(self.c.root, "out")

    def send(self, n):
        self.batch += 1
        pings = [make_ping("crash-%d" % (i % 7), self.sent + i + 1,
                           version="v%d" % i, features=["f%d" % (i % 3)]) for i in range(n)]
        self.assertAck(self.cl.request(pings, batch_id=self.batch), "OK", accepted=n)
        self.sent += n

    def files(self):
        out = {}
        for name in sorted(os.listdir(self.out)):
            with open(os.path.join(self.out, name), "rb") as f:
                out[name] = f.read()
        return out

    def test_crash_before_manifest_then_rerun(self):
        self.send(250)
        for fmt in ("ndjson", "csv"):
            with self.subTest(fmt=fmt):
                cursor = "c" + fmt
                r = self.export("pings", fmt, self.out, "--cursor", cursor, "--max-rows", "100",
                                ok=False, env={"WL_EXPORT_CRASH_BEFORE_MANIFEST": "1"})
                self.assertEqual(r.returncode, 9, r.stderr)
                crashed = {k: v for k, v in self.files().items() if cursor in k}
                self.assertEqual(sorted(crashed), [
                    "pings-%s-000000000001-000000000100.%s.gz" % (cursor, fmt),
                    "pings-%s-000000000101-000000000200.%s.gz" % (cursor, fmt),
                    "pings-%s-000000000201-000000000250.%s.gz" % (cursor, fmt)])
                self.assertEqual(manifests(self.out, "pings", cursor), [])

                r = self.export("pings", fmt, self.out, "--cursor", cursor, "--max-rows", "100")
                after = {k: v for k, v in self.files().items() if cursor in k}
                ms = manifests(self.out, "pings", cursor)
                self.assertEqual(len(ms), 1)
                data = {k: v for k, v in after.items() if not k.startswith("manifest-")}
                self.assertEqual(data, crashed, "the same files, byte for byte")
                rows = self.load(self.out, ms[0])
                self.assertEqual([int(r["ingest_seq"]) for r in rows], list(range(1, 251)))
                self.assertNoTemps(self.out)

    def test_crash_mid_run_redoes_the_same_range(self):
        self.send(250)
        r = self.export("pings", "ndjson", self.out, "--cursor", "mid", "--max-rows", "100",
                        ok=False, env={"WL_EXPORT_CRASH_AFTER_FILES": "1"})
        self.assertEqual(r.returncode, 9, r.stderr)
        crashed = self.files()
        self.assertEqual(sorted(crashed), ["pings-mid-000000000001-000000000100.ndjson.gz"])
        # More pings arrive before the rerun: it still redoes exactly the
        # interrupted range first, into the same file, then a next run goes on.
        self.send(30)
        r = self.export("pings", "ndjson", self.out, "--cursor", "mid", "--max-rows", "100")
        self.assertIn("exporting ingest_seq 1..100 again", r.stderr)
        ms = manifests(self.out, "pings", "mid")
        self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, 100)])
        self.assertEqual(self.files()["pings-mid-000000000001-000000000100.ndjson.gz"],
                         crashed["pings-mid-000000000001-000000000100.ndjson.gz"])
        self.export("pings", "ndjson", self.out, "--cursor", "mid", "--max-rows", "100")
        ms = manifests(self.out, "pings", "mid")
        self.assertEqual([(m["first"], m["last"]) for m in ms], [(1, 100), (101, 280)])
        rows = self.load(self.out, ms[0]) + self.load(self.out, ms[1])
        self.assertEqual([r["ingest_seq"] for r in rows], list(range(1, 281)))

    def test_other_max_rows_after_crash_leaves_no_orphan(self):
        self.send(120)
        r = self.export("pings", "csv", self.out, "--cursor", "o", "--max-rows", "50",
                        ok=False, env={"WL_EXPORT_CRASH_BEFORE_MANIFEST": "1"})
        self.assertEqual(r.returncode, 9)
        self.assertEqual(len(self.files()), 3)
        self.export("pings", "csv", self.out, "--cursor", "o", "--max-rows", "1000")
        self.assertEqual(sorted(self.files()), [
            "manifest-pings-o-000000000001-000000000120.json",
            "pings-o-000000000001-000000000120.csv.gz"])

    def test_sigkill_while_writing(self):
        # A real kill -9 as soon as the run has a file open.
        self.send(2000)
        for _ in range(5):
            self.send(2000)
        argv = [CLI_BIN, "export", "--data-dir", self.c.data_dir, "--table", "pings",
                "--format", "ndjson", "--out", self.out, "--cursor", "k", "--max-rows", "3000"]
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: p.poll() is not None or (os.path.isdir(self.out) and any(
                n.endswith(".tmp") or n.endswith(".gz") for n in os.listdir(self.out))),
                timeout=30, interval=0.001, what="a file of the export")
            p.kill()
        finally:
            p.wait()
        remove_secondary_dirs(self.c.data_dir)
        if p.returncode == 0:
            # It finished before the kill landed: the rerun below must still
            # find a complete, consistent export (nothing to redo).
            sys.stderr.write("\n[test_export] the export finished before the kill\n")
        self.export("pings", "ndjson", self.out, "--cursor", "k", "--max-rows", "3000")
        self.assertNoTemps(self.out)
        ms = manifests(self.out, "pings", "k")
        self.assertEqual(ms[0]["first"], 1)
        while ms[-1]["last"] < self.sent:
            self.export("pings", "ndjson", self.out, "--cursor", "k", "--max-rows", "3000")
            ms = manifests(self.out, "pings", "k")
        rows = [r["ingest_seq"] for m in ms for r in self.load(self.out, m)]
        self.assertEqual(rows, list(range(1, self.sent + 1)))
        listed = {f["name"] for m in ms for f in m["files"]} | {m["_name"] for m in ms}
        self.assertEqual(set(os.listdir(self.out)), listed, "no file outside the manifests")


class LiveIngest(ExportCase):
    """Exports while TCP clients keep sending."""

    def test_export_during_ingest_is_contiguous(self):
        self.c = self.collector(name="live")
        out = os.path.join(self.c.root, "out")
        stop = threading.Event()
        errors = []
        sent = [0, 0]

        def sender(k):
            try:
                with self.client(self.c) as cl:
                    seq, batch = 1, 0
                    while not stop.is_set():
                        batch += 1
                        pings = [make_ping("live-%d-%d" % (k, i), seq) for i in range(50)]
                        ack = cl.request(pings, batch_id=batch)
                        if ack.accepted != 50:
                            errors.append("ack %r" % ack)
                            return
                        sent[k] += 50
                        seq += 1
            except Exception as e:  # reported by the test thread
                errors.append(repr(e))

        threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in (0, 1)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: sum(sent) >= 2000, timeout=30, what="2000 pings sent")
            runs = 0
            deadline = time.monotonic() + 20
            while runs < 4 and time.monotonic() < deadline:
                r = self.export("pings", "csv", out, "--cursor", "live", "--max-rows", "700")
                if "nothing to export" not in r.stdout:
                    runs += 1
            self.assertGreaterEqual(runs, 2)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=IO_TIMEOUT)
        self.assertEqual(errors, [])
        self.export("pings", "csv", out, "--cursor", "live", "--max-rows", "700")
        ms = manifests(out, "pings", "live")
        expect = 1
        total = []
        for m in ms:
            rows = self.load(out, m)
            seqs = [int(r["ingest_seq"]) for r in rows]
            self.assertEqual(m["first"], expect)
            self.assertEqual(seqs, list(range(m["first"], m["last"] + 1)),
                             "a contiguous range: %s" % m["_name"])
            self.assertEqual(m["rows"], len(seqs))
            self.assertEqual(sum(f["rows"] for f in m["files"]), m["rows"])
            expect = m["last"] + 1
            total += seqs
        self.assertEqual(len(total), sum(sent))
        self.assertEqual(len(total), len(dump("pings", self.c.data_dir)))


class BadArguments(ExportCase):
    """Exit 2 with a message, and nothing written."""

    def test_bad_arguments_exit_2_nothing_written(self):
        self.c = self.collector(start=False, name="bad")
        path = os.path.join(self.c.root, "h.ndjson")
        with open(path, "w") as f:
            for p in history():
                f.write(json.dumps(p) + "\n")
        self.assertEqual(run_import(path, self.c.data_dir, config=self.c.ini_path).returncode, 0)
        out = os.path.join(self.c.root, "out")
        afile = os.path.join(self.c.root, "a-file")
        with open(afile, "w") as f:
            f.write("x")
        badini = os.path.join(self.c.root, "bad.ini")
        with open(badini, "w") as f:
            f.write("[accounts]\nscore_half_life_ms = soon\n")
        d = self.c.data_dir
        base = ["--data-dir", d, "--out", out]
        cases = [
            (["--table", "nope", "--format", "csv"] + base, "unknown table 'nope'"),
            (["--format", "csv"] + base, "missing --table"),
            (["--table", "pings"] + base, "missing --format"),
            (["--table", "pings", "--format", "xml"] + base, "unknown format 'xml'"),
            (["--table", "pings", "--format", "csv", "--data-dir", d], "missing --out"),
            (["--table", "pings", "--format", "csv", "--max-rows", "0"] + base, "--max-rows"),
            (["--table", "pings", "--format", "csv", "--max-rows", "1e3"] + base, "--max-rows"),
            (["--table", "pings", "--format", "csv", "--since", "9", "--until", "3"] + base,
             "after --until"),
            (["--table", "pings", "--format", "csv", "--since", "-1"] + base, "--since"),
            (["--table", "pings", "--format", "csv", "--since", "2025-01-01"] + base, "--since"),
            (["--table", "pings", "--format", "csv", "--cursor", "a", "--since", "1"] + base,
             "exclude each other"),
            (["--table", "pings", "--format", "csv", "--cursor", "1abc"] + base,
             "not a cursor name"),
            (["--table", "pings", "--format", "csv", "--cursor", "a-b"] + base,
             "not a cursor name"),
            (["--table", "pings", "--format", "csv", "--cursor", "../x"] + base,
             "not a cursor name"),
            (["--table", "accounts", "--format", "csv", "--since", "1"] + base, "snapshot"),
            (["--table", "pings", "--format", "csv", "extra"] + base, "unexpected argument"),
            (["--table", "pings", "--format", "csv", "--bogus"] + base, "unknown"),
            (["--table", "pings", "--format", "csv", "--max-rows"], "needs a value"),
            (["--table", "pings", "--format", "csv", "--data-dir", d, "--out", afile],
             "not a directory"),
            (["--table", "pings", "--format", "csv", "--data-dir", d, "--out",
              os.path.join(afile, "sub")], "cannot create"),
            (["--table", "pings", "--format", "csv", "--data-dir",
              os.path.join(self.c.root, "missing"), "--out", out], "missing"),
            (["--table", "pings", "--format", "csv", "--config", badini] + base, "bad.ini"),
        ]
        for argv, msg in cases:
            with self.subTest(argv=argv):
                r = subprocess.run([CLI_BIN, "export"] + argv, capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(r.returncode, 2, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
                self.assertIn(msg, r.stderr)
                self.assertTrue(r.stderr.startswith("warmline export: "), r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertFalse(os.path.exists(out), "nothing written")
                with open(afile) as f:
                    self.assertEqual(f.read(), "x")

        # An existing directory with files of earlier runs is left as it was.
        self.export("pings", "csv", out, "--cursor", "x")
        before = {n: os.path.getsize(os.path.join(out, n)) for n in os.listdir(out)}
        for argv, msg in cases[:6]:
            r = subprocess.run([CLI_BIN, "export"] + argv, capture_output=True, text=True)
            self.assertEqual(r.returncode, 2)
        self.assertEqual({n: os.path.getsize(os.path.join(out, n)) for n in os.listdir(out)},
                         before)

        # Another export holding the directory: exit 1, nothing changed.
        fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = run_export(d, "pings", "csv", out, "--cursor", "y")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("another export is writing into it", r.stderr)
        finally:
            os.close(fd)
        self.assertEqual({n: os.path.getsize(os.path.join(out, n)) for n in os.listdir(out)},
                         before)

    def test_unwritable_directory(self):
        # Root writes through permission bits: make the directory immutable
        # instead (chattr +i stops root too), and undo it at the end.
        self.c = self.collector(start=False, name="ro")
        path = os.path.join(self.c.root, "h.ndjson")
        with open(path, "w") as f:
            f.write(json.dumps(history()[0]) + "\n")
        self.assertEqual(run_import(path, self.c.data_dir, config=self.c.ini_path).returncode, 0)
        out = os.path.join(self.c.root, "ro")
        os.mkdir(out, 0o555)
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", out], check=True)
        try:
            r = run_export(self.c.data_dir, "pings", "csv", out)
        finally:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", out], check=True)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot create a file in it", r.stderr)
        self.assertEqual(os.listdir(out), [])


# ---- export schema 2: edge pings ------------------------------------------

RUDDER_KEY = "2k9RudderWriteKeyForExport"
WIRE_INSTALL = "wire-install-1"


def rebuild(rows):
    """{install_id: state} from pings rows in ingest_seq order, as README's
    "Exports for data engineers" says: a wire row (presence null) is the
    install's whole state; an edge row replaces the fields its presence
    names, "feature:X" drops X (licensed also every license_<sku>) from the
    install's features before the row's own are added, and its org is the
    install's organization."""
    state = {}
    for r in sorted(rows, key=lambda r: r["ingest_seq"]):
        if r["presence"] is None:
            state[r["install_id"]] = {k: r[k] for k in STRINGS + COUNTS}
            state[r["install_id"]]["features"] = list(r["features"])
            state[r["install_id"]]["org"] = r["org"]
            continue
        st = state.setdefault(r["install_id"], dict({k: "" for k in STRINGS},
                                                    **{k: 0 for k in COUNTS}, features=[]))
        st["org"] = r["org"]
        names = set(r["presence"])
        for k in STRINGS + COUNTS:
            if k in names:
                st[k] = r[k]
        if "features" in names:
            kept = []
        else:
            cleared = {n[len("feature:"):] for n in names if n.startswith("feature:")}
            kept = [f for f in st["features"]
                    if f not in cleared and not ("licensed" in cleared and
                                                 f.startswith("license_"))]
        st["features"] = kept + [f for f in r["features"] if f not in kept]
    return state


class EdgePings(ExportCase):
    """A wire ping, a security check and Rudder events of one install, and a
    wire-only install, exported in both formats."""

    def setUp(self):
        super().setUp()
        c = HttpCollector({"rudder_write_keys": RUDDER_KEY, "http_rate_per_address": "1000",
                           "http_burst_per_address": "1000",
                           "http_request_deadline_ms": "15s"}, name="edge")
        self._collectors.append(c)
        self.c = c.start()
        self.out = os.path.join(c.root, "out")

    def rudder(self, event, props):
        req = go_batch([go_track(event, props, user_id=INSTALL)], write_key=RUDDER_KEY)
        status, _, body = post(self.c.http_port, req.body, req.headers)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["accepted"], 1, body)

    def test_edge_rows_carry_source_and_presence(self):
        c = self.c
        with self.client(c) as cl:
            ack = cl.request([make_ping(INSTALL, 5, org_key=bytes.fromhex(K1), teams=9,
                                        active_users_monthly=70, edition="team",
                                        features=["ldap_configured", "custom_x"]),
                              make_ping(WIRE_INSTALL, 1, org_key=bytes.fromhex(K2))],
                             batch_id=1)
            self.assertAck(ack, "OK", accepted=2)
        status, _, _ = go_check(c.http_port, go_query(INSTALL, uc="61", auc="14", tc="4",
                                                      b="11.6.0.99"))
        self.assertEqual(status, 200)
        c.wait_stats(lambda s: s["pings_accepted"] == 3, what="the check stored")
        self.rudder("activity", activity_props(registered_users=50, active_users_daily=9,
                                               active_users_monthly=33))
        self.rudder("configs", configs_props(saml=True, ldap=False))
        self.rudder("license", license_props(edition="e20"))
        self.rudder("server", server_props(version="10.11.0", edition="true"))
        self.rudder("configs", configs_props(saml=False, ldap=True))
        c.wait_stats(lambda s: s["pings_accepted"] == 8, what="the Rudder events stored")
        c.stop()

        got = {}
        for fmt in ("ndjson", "csv"):
            out = os.path.join(self.out, fmt)
            self.export("pings", fmt, out, "--cursor", "edge")
            ms = manifests(out, "pings", "edge")
            self.assertEqual([(m["first"], m["last"], m["rows"]) for m in ms], [(1, 8, 8)])
            got[fmt] = self.load(out, ms[0])
        rows = got["ndjson"]
        self.assertEqual([r["source"] for r in rows],
                         ["wire", "wire", "security"] + ["rudder"] * 5)

        # presence: null for the wire, the names dump shows for the edge.
        dumped = {as_int(p["ingest_seq"]): p for p in dump("pings", c.data_dir)}
        for r in rows:
            d = dumped[r["ingest_seq"]]
            self.assertEqual(r["source"], d["source"])
            self.assertEqual(r["presence"], d.get("presence"), r["ingest_seq"])
        check, activity, configs = rows[2]["presence"], rows[3]["presence"], rows[4]["presence"]
        for name in ("registered_users", "active_users_daily", "teams", "version"):
            self.assertIn(name, check)
        self.assertNotIn("active_users_monthly", check, "the check has no monthly actives")
        self.assertNotIn("features", check)
        self.assertIn("active_users_monthly", activity)
        self.assertNotIn("version", activity)
        self.assertIn("feature:saml_configured", configs)
        self.assertIn("feature:licensed", rows[5]["presence"])
        # An absent field prints as 0 or "": presence is what tells them apart.
        self.assertEqual(rows[2]["active_users_monthly"], 0)
        self.assertEqual(rows[3]["version"], "")

        # CSV: the same cells; presence is its JSON text, empty for a wire row.
        for a, b in zip(rows, got["csv"]):
            for col in COLUMNS["pings"]:
                self.assertTrue(csv_cell_matches(b[col], a[col]),
                                "csv %s %r vs ndjson %r" % (col, b[col], a[col]))
        self.assertEqual([b["presence"] for b in got["csv"][:2]], ["", ""])
        self.assertEqual(json.loads(got["csv"][2]["presence"]), check)

        # The install's state rebuilt from the rows is the collector's.
        state = rebuild(rows)
        installs = {r["install_id"]: r for r in c.dump("installs")}
        orgs = {o["org"] for o in c.dump("orgs")}
        self.assertEqual(sorted(state), sorted([INSTALL, WIRE_INSTALL]))
        for inst, st in state.items():
            with self.subTest(install=inst):
                p = installs[inst]["last_ping"]
                for k in STRINGS:
                    self.assertEqual(st[k], p.get(k, ""), k)
                for k in COUNTS:
                    self.assertEqual(st[k], as_int(p.get(k, 0)), k)
                self.assertEqual(sorted(st["features"]), sorted(p.get("features", [])))
                self.assertEqual(st["org"], installs[inst]["org"])
                self.assertIn(st["org"], orgs)
        st = state[INSTALL]
        self.assertEqual((st["registered_users"], st["active_users_monthly"], st["teams"]),
                         (50, 33, 3), "Rudder's activity after the check")
        self.assertEqual(sorted(st["features"]),
                         ["custom_x", "ldap_configured", "license_e20", "licensed"])


def as_schema_1(out, m):
    """Rewrites one schema-2 pings manifest and its files as a schema-1 run
    wrote them (no source and presence), sizes and digests updated."""
    cols = [c for c in m["columns"] if c not in ("source", "presence")]
    for f in m["files"]:
        path = os.path.join(out, f["name"])
        with open(path, "rb") as fh:
            text = gzip.decompress(fh.read()).decode("utf-8")
        if m["format"] == "ndjson":
            lines = []
            for line in text.split("\n")[:-1]:
                r = json.loads(line)
                lines.append(json.dumps({k: r[k] for k in cols}, separators=(",", ":")))
            text = "".join(x + "\n" for x in lines)
        else:
            table = list(csv.reader(io.StringIO(text, newline="")))
            keep = [i for i, c in enumerate(table[0]) if c in cols]
            buf = io.StringIO(newline="")
            w = csv.writer(buf, lineterminator="\r\n")
            for r in table:
                w.writerow([r[i] for i in keep])
            text = buf.getvalue()
        data = gzip.compress(text.encode("utf-8"), mtime=0)
        with open(path, "wb") as fh:
            fh.write(data)
        f["bytes"] = len(data)
        f["sha256"] = hashlib.sha256(data).hexdigest()
    if "_name" in m:
        name = m.pop("_name")
        m["schema_version"] = 1
        m["columns"] = cols
        with open(os.path.join(out, name), "w") as fh:
            json.dump(m, fh, indent=2)
            fh.write("\n")


class SchemaChange(ExportCase):
    """A directory a schema-1 run wrote, then this build: the cursor goes on
    where the schema-1 manifests ended, the new manifest says schema 2 and
    lists its columns, the schema-1 files stay as they are; a schema-1 file
    left without its manifest (a run that stopped) is written again as
    schema 2 under the same name."""

    def send(self, cl, seqs, batch_id):
        ack = cl.request([make_ping("sc-1", s, org_key=bytes.fromhex(K3)) for s in seqs],
                         batch_id=batch_id)
        self.assertAck(ack, "OK", accepted=len(seqs))

    def contents(self, out):
        found = {}
        for n in os.listdir(out):
            with open(os.path.join(out, n), "rb") as fh:
                found[n] = fh.read()
        return found

    def test_schema_1_cursor_then_schema_2_run(self):
        self.c = self.collector(name="schema")
        with self.client(self.c) as cl:
            self.send(cl, range(1, 11), 1)
            for fmt in ("ndjson", "csv"):
                with self.subTest(fmt=fmt):
                    out = os.path.join(self.c.root, "out-" + fmt)
                    self.export("pings", fmt, out, "--cursor", "etl")
                    old = manifests(out, "pings", "etl")
                    self.assertEqual(len(old), 1)
                    as_schema_1(out, old[0])
            self.send(cl, range(11, 21), 2)
            for fmt in ("ndjson", "csv"):
                with self.subTest(fmt=fmt):
                    out = os.path.join(self.c.root, "out-" + fmt)
                    before = self.contents(out)
                    self.export("pings", fmt, out, "--cursor", "etl")
                    ms = manifests(out, "pings", "etl")
                    self.assertEqual([(m["schema_version"], m["first"], m["last"]) for m in ms],
                                     [(1, 1, 10), (2, 11, 20)])
                    self.assertNotIn("source", ms[0]["columns"])
                    after = self.contents(out)
                    for n, data in before.items():
                        self.assertEqual(after[n], data, "%s changed" % n)
                    rows = self.load(out, ms[1])
                    self.assertEqual([int(r["ingest_seq"]) for r in rows], list(range(11, 21)))
                    self.assertEqual({r["source"] for r in rows}, {"wire"})

            # A schema-1 run that stopped before its manifest: its file is
            # written again, as schema 2, and the manifest lists it.
            self.send(cl, range(21, 26), 3)
        out = os.path.join(self.c.root, "out-ndjson")
        r = self.export("pings", "ndjson", out, "--cursor", "etl", ok=False,
                        env={"WL_EXPORT_CRASH_BEFORE_MANIFEST": "1"})
        self.assertEqual(r.returncode, 9, r.stderr)
        orphan = "pings-etl-000000000021-000000000025.ndjson.gz"
        self.assertTrue(os.path.exists(os.path.join(out, orphan)), os.listdir(out))
        as_schema_1(out, {"format": "ndjson", "columns": COLUMNS["pings"],
                          "files": [{"name": orphan}]})
        r = self.export("pings", "ndjson", out, "--cursor", "etl")
        self.assertIn("exporting ingest_seq 21..25 again", r.stderr)
        ms = manifests(out, "pings", "etl")
        self.assertEqual([(m["schema_version"], m["first"], m["last"]) for m in ms],
                         [(1, 1, 10), (2, 11, 20), (2, 21, 25)])
        self.assertEqual([f["name"] for f in ms[2]["files"]], [orphan])
        rows = self.load(out, ms[2])
        self.assertEqual([(r["ingest_seq"], r["source"], r["presence"]) for r in rows],
                         [(s, "wire", None) for s in range(21, 26)])
        self.assertNoTemps(out)


if __name__ == "__main__":
    unittest.main()
