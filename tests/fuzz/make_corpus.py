#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets: tests/fuzz/corpus/<target>/<name>.

Small valid inputs and edge cases for each target, built with Debian's
python3-protobuf from proto/warmline.proto (compiled with protoc into a
temporary directory). Run it again after changing it and commit the files:

    /usr/bin/python3 tests/fuzz/make_corpus.py

It only writes the seeds it names; inputs added by hand (crash regressions)
stay. The fuzz runs work on a copy, so the corpus never grows by itself.
"""
import importlib
import os
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def load_proto():
    tmp = tempfile.mkdtemp(prefix="wl-corpus-")
    subprocess.run(["protoc", "--python_out=" + tmp, "-I", os.path.join(ROOT, "proto"),
                    "warmline.proto"], check=True)
    sys.path.insert(0, tmp)
    return importlib.import_module("warmline_pb2")


pb = load_proto()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def ping(**kw):
    p = pb.Ping(install_id="i-1", seq=1, sent_at=1764201600000, version="9.11.0",
                edition="team", database_type="postgres", operating_system="linux",
                installation_type="docker", registered_users=40, active_users_daily=12,
                active_users_monthly=30, teams=3, public_channels=10, posts=5000,
                features=["saml_configured"])
    for k, v in kw.items():
        if k == "features":
            del p.features[:]
            p.features.extend(v)
        else:
            setattr(p, k, v)
    return p


def batch(*pings):
    b = pb.PingBatch()
    b.pings.extend(pings)
    return b.SerializeToString()


def envelope(payload, version=1, compression=0, batch_id=7):
    e = pb.Envelope(version=version, compression=compression, payload=payload,
                    batch_id=batch_id)
    return e.SerializeToString()


ORG = bytes(range(32))
ONE = batch(ping(org_key=ORG))
TWO = batch(ping(org_key=ORG), ping(install_id="i-2", seq=9, features=[]))


def envelopes():
    t = "envelope"
    write(t, "none_one_ping", envelope(ONE))
    write(t, "zlib_two_pings", envelope(zlib.compress(TWO), compression=1))
    write(t, "empty_payload", envelope(b""))
    write(t, "empty_input", b"")
    write(t, "version_2", envelope(ONE, version=2))
    write(t, "compression_7", envelope(ONE, compression=7))
    write(t, "zlib_bad_stream", envelope(b"\x78\x9c\xff\xff\xff", compression=1))
    write(t, "zlib_truncated", envelope(zlib.compress(TWO)[:-5], compression=1))
    write(t, "zlib_trailing_garbage", envelope(zlib.compress(ONE) + b"xx", compression=1))
    # inflates far past the fuzz cap (256 KiB) and the default (8 MiB)
    write(t, "zlib_bomb", envelope(zlib.compress(b"\0" * (16 << 20), 9), compression=1))
    write(t, "nul_in_string", envelope(batch(ping(version="9\x001"), ping(install_id="a\x00b"))))
    write(t, "payload_not_a_batch", envelope(b"\xff\xff\xff"))
    write(t, "not_an_envelope", b"\x0a\xff\xff\xff\xff")
    write(t, "many_pings", envelope(zlib.compress(batch(*[ping(seq=i + 1) for i in range(50)])),
                                    compression=1))


def pings():
    t = "ping_validate"
    write(t, "one_ping", ONE)
    write(t, "two_pings", TWO)
    write(t, "empty_batch", b"")
    write(t, "minimal_ping", batch(pb.Ping(install_id="x", seq=1)))
    write(t, "install_id_empty", batch(ping(install_id="")))
    write(t, "install_id_65", batch(ping(install_id="i" * 65)))
    write(t, "install_id_tab", batch(ping(install_id="a\tb")))
    write(t, "org_key_31", batch(ping(org_key=ORG[:31])))
    write(t, "seq_zero", batch(ping(seq=0)))
    write(t, "string_129", batch(ping(version="v" * 129)))
    write(t, "string_128_utf8", batch(ping(version="\u00e9" * 64)))
    write(t, "features_65", batch(ping(features=["f%d" % i for i in range(65)])))
    write(t, "count_over", batch(ping(posts=10000001)))
    write(t, "count_uint32_max", batch(ping(teams=0xFFFFFFFF)))
    # invalid UTF-8 needs raw bytes: field 5 (version), wire type 2
    raw = ping(version="").SerializeToString()
    for name, s in [("overlong", b"\xc0\xaf"), ("surrogate", b"\xed\xa0\x80"),
                    ("over_10ffff", b"\xf4\x90\x80\x80"), ("truncated", b"ab\xe2\x82"),
                    ("four_byte_ok", "\U0001F600".encode())]:
        p = raw + b"\x2a" + varint(len(s)) + s
        write(t, "utf8_" + name, b"\x0a" + varint(len(p)) + p)


def frames():
    t = "frame_stream"
    e1 = envelope(ONE)
    e2 = envelope(zlib.compress(TWO), compression=1)
    stream = varint(len(e1)) + e1 + varint(len(e2)) + e2
    # byte 0: the limit (index 6 = 1 MiB), byte 1: read size - 1
    write(t, "two_frames_1mib", bytes([6, 15]) + stream)
    write(t, "two_frames_bytewise", bytes([6, 0]) + stream)
    write(t, "over_limit_300", bytes([4, 3]) + varint(301) + b"x" * 10)
    write(t, "empty_frames", bytes([0, 0]) + b"\0\0\0")
    write(t, "padded_varint", bytes([6, 1]) + b"\x85\x00hello")
    write(t, "varint_10_bytes", bytes([7, 2]) + b"\x80" * 9 + b"\x01")
    write(t, "varint_bad_11", bytes([7, 4]) + b"\xff" * 11)
    write(t, "varint_bit_64", bytes([7, 4]) + b"\xff" * 9 + b"\x02")
    write(t, "truncated_body", bytes([6, 5]) + varint(100) + b"abc")


def configs():
    t = "config_rules"
    with open(os.path.join(ROOT, "collector", "warmline.ini"), "rb") as f:
        write(t, "warmline_ini", f.read())
    write(t, "rules_all_forms", """[collector]
durability = async
[limits]
max_frame_bytes = 64KiB
[rule "growth"]
when = growth_7d(active_users_monthly) >= 20 and
    (installs > 1 or public_channels + private_channels >= 40)
weight = 2.5
cooldown = 12h
hysteresis = 15%
description = grows
[rule "sso"]
when = has_feature(saml_configured) or edition == "enterprise"
""")
    write(t, "condition_only", "teams >= 3 and (growth_30d(posts) > 10.5 or installs == 2)")
    write(t, "rule_twice_key", '[rule "a"]\nwhen = teams > 1\nwhen = teams > 2\n')
    write(t, "rule_bad_name", "[rule a]\nwhen = teams > 1\n")
    write(t, "rule_unbalanced", '[rule "a"]\nwhen = ((teams > 1)\n')
    write(t, "unknown_option", "[limits]\nmax_nothing = 3\n")
    write(t, "bad_size", "[limits]\nmax_frame_bytes = 12QiB\n")
    write(t, "long_line", "[collector]\ndata_dir = " + "d" * 300 + "\n")
    write(t, "no_section", "max_count = 5\n")


def api_params():
    t = "api_params"
    # byte 0: 0 hot, 1 signals, 2 account, 3 none
    write(t, "hot_all", b"\0limit=10&min_score=1.5&rule=mau_over_25&since=2026-11-01T12:00:00Z")
    write(t, "hot_offset", b"\0since=2026-02-28T23:59:59.123+05:30")
    write(t, "hot_date", b"\0since=2024-02-29&limit=1000")
    write(t, "hot_ms", b"\0since=1764201600000&min_score=.5")
    write(t, "hot_bad_score", b"\0min_score=inf")
    write(t, "hot_repeat", b"\0limit=1&limit=2")
    write(t, "hot_unknown", b"\0colour=blue")
    write(t, "hot_escaped", b"\0rule=a%2Eb&since=2026-11-01T12%3A00Z")
    write(t, "signals", b"\1after=9223372036854775807&limit=100")
    write(t, "signals_overflow", b"\1after=18446744073709551616")
    write(t, "account_days", b"\2days=3650")
    write(t, "none_flag", b"\3flag")
    # after=: the hot list's cursor, base64url without padding (14 to 78 bytes)
    write(t, "hot_after", b"\0limit=5&after=AQAAAAXAAAAAAAAAAGsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    write(t, "hot_after_padded", b"\0after=AQAAAAXAAAAAAAAAAGsA==")


def csv():
    t = "named_csv"
    write(t, "header_two_rows", "domain,name,owner\nexample.com,Example Inc,alice\nacme.io,Acme,bob\n")
    write(t, "crlf_quoted", 'domain,name,owner\r\n"a.com","A, ""the"" one","x\r\ny"\r\n')
    write(t, "blank_lines_cr", "\n\r\ndomain,name,owner\rb.com,B,\r\r")
    write(t, "no_final_newline", "domain,name,owner\nc.com,C,carol")
    write(t, "unterminated", 'domain,name,owner\n"d.com,D,dan\n')
    write(t, "quote_inside", 'domain,name,owner\ne.com,E"x,erin\n')
    write(t, "text_after_quote", 'domain,name,owner\n"f.com"x,F,f\n')
    write(t, "nul", b"domain,name,owner\ng.com,\0,g\n")
    write(t, "many_fields", "a,b,c,d,e,f,,,\n,,\n")


def networks_csv():
    t = "networks_csv"
    write(t, "header_nested", "cidr,domain\n10.0.0.0/8,acme.com\n10.1.0.0/16,globex.com\n"
          "10.1.2.3/32,initech.com\n0.0.0.0/0,any.example\n")
    write(t, "ipv6", "2001:db8::/32,acme.com\n2001:db8:1::/48,b.example\n::/0,c.example\n"
          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128,d.example\n::,e.example\n")
    write(t, "bom_crlf_quoted", b'\xef\xbb\xbf"cidr","domain"\r\n"192.168.0.0/16", ACME.com \r\n')
    write(t, "host_bits", "10.0.0.1/8,a.example\n")
    write(t, "duplicate", "10.0.0.0/8,a.example\n10.0.0.0/8,a.example\n10.0.0.0/8,b.example\n")
    write(t, "mapped", "::ffff:10.0.0.0/104,a.example\n::fffe:0:0/95,b.example\n")
    write(t, "bad_fields", "10.0.0.0/8\n10.0.0.0/8,a@b.example\n10.0.0.0/33,x\n")
    write(t, "adjacent", "".join("10.0.%d.0/24,o%d.example\n" % (i, i % 3) for i in range(40)))


envelopes()
pings()
frames()
configs()
api_params()
csv()
networks_csv()
