"""The sales-ops page in a real browser: Debian's chromium driven by
playwright-core (tests/ui/ui.js, one browser launch for every view) against
real collectors loaded through `warmline import` with the 60-day history of
test_signals (shifted to end yesterday).

This wrapper owns the collectors: one without tokens (loopback only), one
with a read and an admin token, one empty. ui.js gets their addresses and what to expect
in a JSON file, prints one `ok NAME` or `FAIL NAME: why` line per scenario,
and asks the wrapper for actions it cannot do from the browser with an
`@ACTION` line (answered with one line on its stdin): `@fire` makes a
signal fire while the page is open, `@stop` stops the empty collector.

Screenshots go to WL_UI_OUT (default <build>/ui-out), never to a tracked
file; `make ui-screenshot` copies the hot list's into docs/.
If chromium cannot start, the test fails with the browser's message.
"""

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import test_signals as hist  # noqa: E402  (the history, its organizations and rules)
from harness import (BUILD_DIR, Collector, CollectorCase, TcpClient, api_call,  # noqa: E402
                     make_ping, run_import, set_options)

NODE = os.environ.get("WL_NODE", "node")
CHROMIUM = os.environ.get("WL_CHROMIUM", "/usr/bin/chromium")
OUT = os.environ.get("WL_UI_OUT") or os.path.join(BUILD_DIR, "ui-out")
UI_TIMEOUT = 240  # seconds for every scenario together (a watchdog, not a figure)
XSS_NAME = "<img src=x onerror=\"window.__wl_xss=1\">Evil & Co"


def shifted_history():
    """The history's pings moved by whole days so that its last day is yesterday."""
    today = int(time.time() * 1000) // hist.DAY
    shift = (today - 1 - (hist.BASE_DAY + hist.N_DAYS - 1)) * hist.DAY
    pings = hist.history_pings()
    for p in pings:
        p["sent_at"] += shift
    return pings


def load(c):
    pings = shifted_history()
    path = os.path.join(c.root, "history.ndjson")
    with open(path, "w") as f:
        for p in pings:
            f.write(json.dumps(p) + "\n")
    r = run_import(path, c.data_dir, org_salt_file=c.salt_path)
    if r.returncode != 0:
        raise AssertionError("import failed: exit %d\n%s" % (r.returncode, r.stderr))


class Page(CollectorCase):
    test_timeout = UI_TIMEOUT + 60

    def start_collectors(self):
        open_c = self.collector(start=False, name="ui-open")
        load(open_c)
        open_c.start()
        tok_c = self.collector(start=False, name="ui-tokens")
        load(tok_c)
        self.read_token = "read-" + secrets.token_hex(16)
        self.admin_token = "admin-" + secrets.token_hex(16)
        paths = {}
        for name, tok in (("read", self.read_token), ("admin", self.admin_token)):
            paths[name] = os.path.join(tok_c.root, name + ".token")
            with open(paths[name], "w") as f:
                f.write(tok + "\n")
        set_options(tok_c, {"read_token_file": paths["read"],
                            "admin_token_file": paths["admin"]})
        tok_c.start()
        empty_c = self.collector(name="ui-empty")
        return open_c, tok_c, empty_c

    def fire(self, c):
        """A second install of charlie.example (one install until now): the
        bundled second_install rule fires at once, and it alone: the install
        brings no users, so mau_growth_30d (whose 30-day cooldown from the
        history's firing ends at that firing's time of day, today) stays
        quiet whatever the hour the test runs at."""
        ping = make_ping("c9", 1, org_key=bytes.fromhex(hist.org_ids(c.org_salt)["C"]),
                         active_users_monthly=0, active_users_daily=0, registered_users=0)
        with TcpClient(c.tcp_port) as t:
            ack = t.request([ping])
        return "fired %s" % " ".join(str(ack).split())  # one line

    def test_page(self):
        ui_dir = HERE
        if not os.path.isdir(os.path.join(ui_dir, "node_modules", "playwright-core")):
            self.fail("tests/ui/node_modules is missing: run `make ui-deps` (npm ci in tests/ui)")
        open_c, tok_c, empty_c = self.start_collectors()
        orgs = hist.org_ids(open_c.org_salt)
        hot = api_call(open_c.api_port, "GET", "/v1/accounts/hot?limit=1000")
        self.assertEqual(hot.status, 200, hot)
        os.makedirs(OUT, exist_ok=True)
        cfg = {
            "base": "http://127.0.0.1:%d" % open_c.api_port,
            "tokenBase": "http://127.0.0.1:%d" % tok_c.api_port,
            "emptyBase": "http://127.0.0.1:%d" % empty_c.api_port,
            "readToken": self.read_token,
            "adminToken": self.admin_token,
            "chromium": CHROMIUM,
            "out": OUT,
            "hot": hot.json()["accounts"],
            "orgs": orgs,
            "xssName": XSS_NAME,
            "only": os.environ.get("WL_UI_ONLY", ""),
        }
        cfg_path = os.path.join(open_c.root, "ui.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        proc = subprocess.Popen([NODE, os.path.join(ui_dir, "ui.js"), cfg_path],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=ui_dir)
        killer = threading.Timer(UI_TIMEOUT, proc.kill)
        killer.daemon = True
        killer.start()
        lines = []
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                sys.stderr.write("ui: %s\n" % line)
                if line.startswith("@fire"):
                    proc.stdin.write(self.fire(open_c) + "\n")
                    proc.stdin.flush()
                elif line.startswith("@stop"):
                    empty_c.stop()
                    proc.stdin.write("stopped\n")
                    proc.stdin.flush()
            rc = proc.wait()
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out = "\n".join(lines)
        self.assertFalse([x for x in lines if x.startswith("FAIL")], out)
        self.assertEqual(rc, 0, "ui.js exit %s:\n%s" % (rc, out))
        self.assertTrue([x for x in lines if x.startswith("ok ")], out)
        if cfg["only"] in ("", "hot") or "hot" in cfg["only"].split(","):
            self.assertTrue(os.path.exists(os.path.join(OUT, "hot.png")), out)
        open_c.stop()  # exit 0: under the sanitizers, nothing leaked or wrong at exit
        tok_c.stop()


if __name__ == "__main__":
    unittest.main()
