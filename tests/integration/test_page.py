"""The sales-ops page's files over HTTP (collector/api_page.c), against the
real collector: GET / and /assets/<name> from the bytes built into the
binary, with their Content-Type, the page's security headers on every
answer, ETag revalidation (304), gzip when the request accepts it (and only
then), no token needed for the files while the API's data still needs one,
and the page's own bytes under 150 KB compressed. The page in a browser is
tests/ui."""

import gzip
import os
import re
import secrets
import unittest

from harness import REPO, CollectorCase, api_call, set_options

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
WEB = os.path.join(REPO, "web")
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml", "index.html": "text/html; charset=utf-8"}


class PageFiles(CollectorCase):

    def setUp(self):
        super().setUp()
        self.c = self.collector()
        self.addCleanup(self.c.stop)  # exit 0: under the sanitizers, nothing leaked at exit

    def get(self, path, **headers):
        return api_call(self.c.api_port, "GET", path, headers=headers)

    def assert_page_headers(self, r):
        self.assertEqual(r.headers.get("content-security-policy"), CSP, r.headers)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
        self.assertEqual(r.headers.get("referrer-policy"), "no-referrer")
        self.assertEqual(r.headers.get("x-frame-options"), "DENY")
        self.assertEqual(r.headers.get("cache-control"), "no-cache")
        self.assertEqual(r.headers.get("vary"), "Accept-Encoding")
        self.assertRegex(r.headers.get("etag", ""), r'^"[0-9a-f]{20}(-gz)?"$')

    def test_index_is_the_file_in_web(self):
        r = self.get("/")
        self.assertEqual(r.status, 200, r)
        self.assert_page_headers(r)
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertNotIn("content-encoding", r.headers)
        with open(os.path.join(WEB, "index.html"), "rb") as f:
            self.assertEqual(r.body, f.read())
        # no inline script or style: the CSP allows none
        html = r.body.decode()
        self.assertEqual(re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html), [])
        self.assertNotIn("<style", html)
        self.assertNotRegex(html, r"\son[a-z]+=")

    def test_assets(self):
        for name, ctype in ASSETS.items():
            with self.subTest(name=name):
                r = self.get("/assets/" + name)
                self.assertEqual(r.status, 200, r)
                self.assert_page_headers(r)
                self.assertEqual(r.headers["content-type"], ctype)
                with open(os.path.join(WEB, name), "rb") as f:
                    self.assertEqual(r.body, f.read())

    def test_unknown_and_not_served(self):
        for path in ("/assets/nope.js", "/assets/embed.cmake", "/assets/app.js/",
                     "/assets/..%2fCMakeLists.txt", "/assets/%00", "/index.html", "/assets"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 404, r)
                self.assertEqual(r.json()["error"]["code"], "not_found")
        r = api_call(self.c.api_port, "POST", "/", body=b"x",
                     headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers.get("allow"), "GET")

    def test_gzip_when_accepted(self):
        plain = self.get("/assets/app.js")
        for ae in ("gzip", "gzip, deflate, br", "GZIP", "br;q=1, gzip;q=0.5", "*",
                   "deflate, gzip ; q=0.001"):
            with self.subTest(accept_encoding=ae):
                r = self.get("/assets/app.js", **{"Accept-Encoding": ae})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("content-encoding"), "gzip")
                self.assert_page_headers(r)
                self.assertEqual(gzip.decompress(r.body), plain.body)
                self.assertLess(len(r.body), len(plain.body) / 2)
                self.assertNotEqual(r.headers["etag"], plain.headers["etag"])
        for ae in ("identity", "gzip;q=0", "gzip; q=0.0", "deflate", "br", "", "gzipx",
                   "x-gzip2", ",,,", "gzip;q=", ";;"):
            with self.subTest(accept_encoding=ae):
                r = self.get("/assets/app.js", **{"Accept-Encoding": ae})
                self.assertEqual(r.status, 200, r)
                self.assertNotIn("content-encoding", r.headers)
                self.assertEqual(r.body, plain.body)

    def test_revalidation(self):
        for ae in ("identity", "gzip"):
            with self.subTest(accept_encoding=ae):
                first = self.get("/", **{"Accept-Encoding": ae})
                etag = first.headers["etag"]
                for inm in (etag, "W/" + etag, '"other", ' + etag, "*", ' "x" ,  ' + etag):
                    r = self.get("/", **{"Accept-Encoding": ae, "If-None-Match": inm})
                    self.assertEqual(r.status, 304, (inm, r))
                    self.assertEqual(r.body, b"")
                    self.assertEqual(r.headers["etag"], etag)
                    self.assert_page_headers(r)
                for inm in ('"other"', etag[:-2] + '"', etag + "x", "", ","):
                    r = self.get("/", **{"Accept-Encoding": ae, "If-None-Match": inm})
                    self.assertEqual(r.status, 200, (inm, r))
        # the gzip form's tag does not revalidate the plain form, nor back
        gz = self.get("/", **{"Accept-Encoding": "gzip"}).headers["etag"]
        plain = self.get("/", **{"Accept-Encoding": "identity"}).headers["etag"]
        self.assertEqual(self.get("/", **{"If-None-Match": gz,
                                          "Accept-Encoding": "identity"}).status, 200)
        self.assertEqual(self.get("/", **{"If-None-Match": plain,
                                          "Accept-Encoding": "gzip"}).status, 200)

    def test_page_under_150_kb_compressed(self):
        total = 0
        for name in ASSETS:
            r = self.get("/assets/" + name, **{"Accept-Encoding": "gzip"})
            total += len(r.body)
        self.assertLess(total, 150 * 1024, total)
        print("page bytes compressed: %d" % total)


class PageWithTokens(CollectorCase):
    """The files need no token (they hold no data); the API's data does."""

    def test_files_open_data_closed(self):
        c = self.collector(start=False, name="page-tokens")
        path = os.path.join(c.root, "read.token")
        with open(path, "w") as f:
            f.write("read-" + secrets.token_hex(16) + "\n")
        set_options(c, {"read_token_file": path})
        c.start()
        for p in ("/", "/assets/app.js", "/assets/app.css"):
            r = api_call(c.api_port, "GET", p)
            self.assertEqual(r.status, 200, (p, r))
        r = api_call(c.api_port, "GET", "/v1/accounts/hot")
        self.assertEqual(r.status, 401, r)
        # an unknown asset is answered without the token too, and says nothing more
        r = api_call(c.api_port, "GET", "/assets/secret")
        self.assertEqual(r.status, 404, r)
        c.stop()


if __name__ == "__main__":
    unittest.main()
