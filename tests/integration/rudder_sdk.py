"""RudderStack clients for the integration tests of POST /v1/batch (issue 13).

Two clients, as deployed free servers and their neighbours send:

- The official Node SDK, for real: send_with_sdk() runs rudder_node/send.js
  (@rudderstack/rudder-sdk-node, pinned in rudder_node/package.json and its
  lockfile, installed by `make node-deps`: npm ci). It never skips: without
  node_modules it raises with the command to run.
- The Go client (rudderlabs/analytics-go v3.3.3, what Mattermost servers v5.23
  to v10.x link), rebuilt from its source as /work/shared/VENDOR-TELEMETRY.md
  records it: go_batch() gives the body (struct fields in Go's order, map keys
  sorted, RFC3339Nano times, `<>&` escaped as Go does) and the headers. With
  RudderDataplaneURL overridden the server sends one message per request.

And builders for the properties of the daily events a Mattermost server sends
(`activity`, `server`, `license`, `configs` of v10.3+ with nested config_*
objects, and the per-section `config_*` events of v10.2 and earlier), with
the property names exactly as VENDOR-TELEMETRY.md records them, and the
event-driven "feature" events that carry raw user ids.

Standard library only.
"""

import base64
import datetime
import gzip
import http.client
import json
import os
import subprocess
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "rudder_node")
SEND_JS = os.path.join(NODE_DIR, "send.js")
NODE = "/usr/bin/node"
SDK_PACKAGE = "@rudderstack/rudder-sdk-node"
SDK_VERSION = "3.1.1"                       # pinned in rudder_node/package.json
NPM_CI = "npm ci --omit=optional --ignore-scripts --no-audit --no-fund --prefix %s" % NODE_DIR

INSTALL = "k7x3pq9s1bfj8ctw5yhzr4ud6e"      # 26 characters of the vendor's id alphabet
ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
MATTERMOST_PROD_KEY = "1aoejPqhgONMI720CsBSRWzzRQ9"
MATTERMOST_TEST_KEY = "1aoeoCDeh7OCHcbW2kseWlwUFyq"

GO_LIBRARY_VERSION = "3.3.0"                # batch-level context.library.version
GO_MESSAGE_LIBRARY = {"library": {"name": "analytics-go", "version": "1.0.0"}}
GO_HEADERS = {
    "User-Agent": "analytics-go (version: 3.3.0)",
    "Content-Type": "application/json",
    "Rs-Targetnode": "0",
    "Rs-Nodecount": "1",
    "Rs-Useragent": "serverSDK",
    "Accept-Encoding": "gzip",
}


class SdkMissing(RuntimeError):
    """The Node SDK is not installed where send.js looks for it."""


def basic_auth(write_key):
    """The Authorization header both clients send: the key as user, no password."""
    return "Basic " + base64.b64encode(write_key.encode() + b":").decode("ascii")


def random_install_id(rng=None):
    """A 26-character id of the vendor's alphabet (rng: a random.Random, or os.urandom)."""
    if rng is None:
        return "".join(ID_ALPHABET[b % 32] for b in os.urandom(26))
    return "".join(rng.choice(ID_ALPHABET) for _ in range(26))


# --------------------------------------------------------------------------
# The Node SDK, through rudder_node/send.js.

def sdk_installed():
    """Raises SdkMissing (with the command to run) unless the pinned SDK is installed."""
    pkg = os.path.join(NODE_DIR, "node_modules", SDK_PACKAGE, "package.json")
    try:
        with open(pkg) as f:
            version = json.load(f).get("version")
    except (OSError, ValueError) as e:
        raise SdkMissing("%s is not installed (%s): run `make node-deps` or `%s`"
                         % (SDK_PACKAGE, e, NPM_CI)) from None
    if version != SDK_VERSION:
        raise SdkMissing("%s %s is installed, the lockfile pins %s: run `%s`"
                         % (SDK_PACKAGE, version, SDK_VERSION, NPM_CI))
    if not os.access(NODE, os.X_OK):
        raise SdkMissing("%s is missing (Node 20 is on these machines; never apt-get npm)"
                         % NODE)


def node_events(pairs, user_id=INSTALL, anonymous=False, message_ids=None):
    """send.js events from (event, properties) pairs, all of one install. anonymous: also
    set anonymousId (the SDK sends none unless asked). message_ids: one per pair, or None
    for the SDK's own random UUIDs."""
    out = []
    for n, (event, props) in enumerate(pairs):
        ev = {"type": "track", "event": event, "userId": user_id, "properties": props}
        if anonymous:
            ev["anonymousId"] = user_id
        if message_ids is not None:
            ev["messageId"] = message_ids[n]
        out.append(ev)
    return out


def send_with_sdk(url, key, events, gzip=True, timeout=60.0, retries=None,
                  retry_delay_ms=None, request_timeout_ms=None, one_request=False,
                  flush_at=None):
    """Sends events (dicts: type, event, userId, anonymousId?, properties, messageId?) to
    url (the data plane: the SDK appends /v1/batch) through the official Node SDK.
    Returns (returncode, stderr): 0 when the SDK reported every event sent, 1 when it
    reported an error (stderr: `send.js: failed event=N status=... message=...`).

    Defaults are the SDK's (gzip, 3 retries on network errors, 5xx and 429 with delays of
    200/400/800 ms or Retry-After, whichever is longer; the first event of the client's
    life alone in its own request, then up to 20 per request) except a 10 s request
    timeout. one_request: every event in one request. timeout: the whole run, in seconds
    (AssertionError past it)."""
    sdk_installed()
    argv = [NODE, SEND_JS, "--url", url, "--write-key", key,
            "--gzip" if gzip else "--no-gzip"]
    if retries is not None:
        argv += ["--retries", str(retries)]
    if retry_delay_ms is not None:
        argv += ["--retry-delay-ms", str(retry_delay_ms)]
    if request_timeout_ms is not None:
        argv += ["--timeout-ms", str(request_timeout_ms)]
    if flush_at is not None:
        argv += ["--flush-at", str(flush_at)]
    if one_request:
        argv.append("--one-request")
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="wl-rudder-") as f:
        json.dump(events, f)
        f.flush()
        argv += ["--events", f.name]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, cwd=NODE_DIR)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("send.js ran past %.0f s; stderr: %s"
                                 % (timeout, (e.stderr or b"").decode(errors="replace")))
    return p.returncode, p.stderr.decode(errors="replace")


# --------------------------------------------------------------------------
# The Go client (analytics-go v3.3.3), rebuilt from its source.

def go_time(t=None):
    """RFC3339Nano as Go prints a UTC time.Time: trailing zeros of the fraction trimmed."""
    t = t or datetime.datetime.now(datetime.timezone.utc)
    t = t.astimezone(datetime.timezone.utc)
    frac = ("%06d" % t.microsecond).rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


def _go_sorted(v):
    """Go marshals maps with their keys sorted (structs keep field order)."""
    if isinstance(v, dict):
        return {k: _go_sorted(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_go_sorted(x) for x in v]
    return v


def go_json(obj):
    """Bytes as encoding/json writes obj: compact, UTF-8, with <, >, &, U+2028 and U+2029
    escaped (those can only occur inside strings, so replacing them is safe)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(ch, esc)
    return s.encode("utf-8")


def go_track(event, properties, user_id=INSTALL, message_id=None, timestamp=None,
             context=None):
    """One track message in the Go struct's field order: type, messageId, anonymousId (=
    userId, makeAnonymousId), userId, event, timestamp, context, properties. context:
    the per-message one (default: the library's, as Mattermost passes nil)."""
    msg = {"type": "track", "messageId": message_id or str(uuid.uuid4()),
           "anonymousId": user_id, "userId": user_id, "event": event,
           "timestamp": timestamp or go_time(),
           "context": context if context is not None else GO_MESSAGE_LIBRARY}
    if properties:
        msg["properties"] = _go_sorted(properties)
    return msg


def go_identify(user_id=INSTALL, message_id=None, timestamp=None):
    """The identify the server enqueues once per process (no traits)."""
    return {"type": "identify", "messageId": message_id or str(uuid.uuid4()),
            "anonymousId": user_id, "userId": user_id, "timestamp": timestamp or go_time(),
            "context": GO_MESSAGE_LIBRARY}


def go_messages(pairs, user_id=INSTALL):
    """Go track messages from (event, properties) pairs of one install."""
    return [go_track(e, p, user_id) for e, p in pairs]


class GoRequest:
    """A POST /v1/batch as the Go client sends it: body bytes, headers (dict, Go's
    canonical names), and the messageIds inside (batch first, then each message)."""

    def __init__(self, body, headers, message_ids):
        self.body, self.headers, self.message_ids = body, headers, message_ids

    def __iter__(self):
        return iter((self.body, self.headers))


def go_batch(messages, message_id=None, sent_at=None, write_key=MATTERMOST_PROD_KEY):
    """The Go client's request for messages (go_track/go_identify dicts): body
    {"messageId","sentAt","batch":[...],"context":{"library":{"name":"analytics-go",
    "version":"3.3.0"}}}, plain JSON, never gzipped; headers as upload() sets them. A
    resend is the same GoRequest sent again (the client resends the marshalled bytes)."""
    body = go_json({"messageId": message_id or str(uuid.uuid4()),
                    "sentAt": sent_at or go_time(),
                    "batch": list(messages),
                    "context": {"library": {"name": "analytics-go",
                                            "version": GO_LIBRARY_VERSION}}})
    headers = dict(GO_HEADERS)
    headers["Authorization"] = basic_auth(write_key)
    headers["Content-Length"] = str(len(body))
    ids = [json.loads(body)["messageId"]] + [m.get("messageId") for m in messages]
    return GoRequest(body, headers, ids)


# --------------------------------------------------------------------------
# The Node SDK's shape without the SDK (for what the SDK would not send: thousands of
# messages in one request, bodies made ahead for a bench), as the capture shows it.

NODE_HEADERS_GZIP = {"Accept": "application/json, text/plain, */*",
                     "Content-Type": "application/x-www-form-urlencoded",
                     "user-agent": "analytics-node/%s" % SDK_VERSION,
                     "Content-Encoding": "gzip"}


def node_message(event, properties, user_id=INSTALL, message_id=None, stamp=None,
                 anonymous=False):
    """One message as the SDK enqueues it (enqueue() then flush(): sentAt last)."""
    stamp = stamp or time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    m = {"event": event, "userId": user_id, "properties": properties}  # send.js's order
    if anonymous:
        m["anonymousId"] = user_id
    m.update({"type": "track",
              "context": {"library": {"name": "analytics-node", "version": SDK_VERSION}},
              "channel": "server", "_metadata": {"nodeVersion": "20.20.2"},
              "originalTimestamp": stamp, "messageId": message_id or str(uuid.uuid4()),
              "sentAt": stamp})
    return m


def node_batch(messages, gzip_body=True, write_key="TESTWRITEKEY123", stamp=None):
    """(body, headers) of the SDK's request for node_message dicts: {"batch","timestamp",
    "sentAt"}, gzip labelled application/x-www-form-urlencoded, or plain JSON."""
    stamp = stamp or time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = json.dumps({"batch": list(messages), "timestamp": stamp, "sentAt": stamp},
                      separators=(",", ":")).encode()
    if gzip_body:
        headers = dict(NODE_HEADERS_GZIP)
        body = gzip.compress(body, 6)
    else:
        headers = {k: v for k, v in NODE_HEADERS_GZIP.items() if k != "Content-Encoding"}
        headers["Content-Type"] = "application/json"
    headers["Authorization"] = basic_auth(write_key)
    return body, headers


def post(port, body, headers, path="/v1/batch", host="127.0.0.1", timeout=10.0):
    """One POST on a fresh connection: (status, {lower-case header: value}, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        h = dict(headers)
        h.setdefault("Host", "%s:%d" % (host, port))
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        if not any(k.lower() == "content-length" for k in h):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The daily events of a Mattermost server (VENDOR-TELEMETRY.md section 3).

LICENSE_FEATURES = (
    "ldap", "ldap_groups", "mfa", "google", "office365", "openid", "compliance", "cluster",
    "metrics", "mhpns", "saml", "elastic_search", "email_notification_contents",
    "data_retention", "message_export", "custom_permissions_schemes", "guest_accounts",
    "guest_accounts_permissions", "id_loaded", "lock_teammate_name_display",
    "enterprise_plugins", "advanced_logging", "cloud", "shared_channels",
    "remote_cluster_service", "future", "outgoing_oauth_connections")

ACTIVITY_FIELDS = (
    "registered_users", "bot_accounts", "guest_accounts", "active_users_daily",
    "active_users_monthly", "registered_deactivated_users", "teams", "public_channels",
    "private_channels", "direct_message_channels", "public_channels_deleted",
    "private_channels_deleted", "posts_previous_day", "bot_posts_previous_day", "posts",
    "slash_commands", "incoming_webhooks", "outgoing_webhooks")


def server_props(version="10.11.0", edition="true", database_type="postgres",
                 database_version="16.4", operating_system="linux",
                 installation_type="docker", system_admins=2):
    """`server`: edition is the string "true"/"false"; system_admins and database_version
    are left out when None (the server omits them when its query fails)."""
    p = {"edition": edition, "version": version, "database_type": database_type,
         "operating_system": operating_system, "installation_type": installation_type}
    if system_admins is not None:
        p["system_admins"] = system_admins
    if database_version is not None:
        p["database_version"] = database_version
    return p


def activity_props(registered_users=57, active_users_daily=12, active_users_monthly=40,
                   **others):
    """`activity`: every field an integer; others override the rest by name."""
    p = {f: 0 for f in ACTIVITY_FIELDS}
    p.update(registered_users=registered_users, active_users_daily=active_users_daily,
             active_users_monthly=active_users_monthly, teams=3, public_channels=20,
             private_channels=5, direct_message_channels=30, posts=12000,
             posts_previous_day=140, bot_accounts=2, registered_deactivated_users=4)
    unknown = set(others) - set(ACTIVITY_FIELDS)
    if unknown:
        raise ValueError("activity has no field %s" % ", ".join(sorted(unknown)))
    p.update(others)
    return p


def license_props(customer_id="cust-7f3a9e1c", license_id="lic-2b8d4c6a", users=500,
                  edition="enterprise", issued=1735689600000, start=1735689600000,
                  expire=1767225600000, features=("ldap", "saml", "cluster", "guest_accounts")):
    """`license` (sent only when licensed): customer_id and license_id raw, times in epoch
    ms, one feature_<name> bool per licence feature (true for those in features)."""
    p = {"customer_id": customer_id, "license_id": license_id, "issued": issued,
         "start": start, "expire": expire, "users": users, "edition": edition}
    for f in LICENSE_FEATURES:
        p["feature_" + f] = f in features
    return p


def config_sections(saml=False, ldap=False, guest_accounts=False, cluster=False,
                    allowed_email_domain=(), feature_flags=None):
    """The config_* sections (name -> object), with the keys VENDOR-TELEMETRY.md records:
    `enable` for saml, ldap and cluster; config_guest_accounts, config_wrangler (with
    allowed_email_domain, raw domains in the order given), config_team and part of
    config_service in full; config_feature_flags with string values."""
    return {
        "config_service": {
            "isdefault_site_url": False, "web_server_mode": "gzip",
            "connection_security": "", "collapsed_threads": "always_on",
            "maximum_login_attempts": 10, "post_edit_time_limit": -1,
            "enable_api_team_deletion": False},
        "config_team": {
            "enable_user_creation": True, "enable_open_server": False,
            "enable_user_deactivation": False, "enable_custom_user_statuses": True,
            "enable_last_active_time": True, "enable_custom_brand": False,
            "enable_confirm_notifications_to_channel": True,
            "experimental_view_archived_channels": True,
            "lock_teammate_name_display": False, "isdefault_site_name": False,
            "isdefault_custom_brand_text": True, "isdefault_custom_description_text": True,
            "isdefault_user_status_away_timeout": True,
            "experimental_enable_automatic_replies": False,
            "experimental_primary_team": True, "restrict_direct_message": "any",
            "teammate_name_display": "username", "max_notifications_per_channel": 1000,
            "max_users_per_team": 50, "max_channels_per_team": 2000,
            "experimental_default_channels": 0},
        "config_ldap": {"enable": ldap},
        "config_saml": {"enable": saml},
        "config_cluster": {"enable": cluster},
        "config_guest_accounts": {
            "enable": guest_accounts, "hide_tag": False, "allow_email_accounts": True,
            "enforce_multifactor_authentication": False,
            "isdefault_restrict_creation_to_domains": True},
        "config_wrangler": {
            "permitted_wrangler_users": ["system_admin"],
            "allowed_email_domain": list(allowed_email_domain),
            "move_thread_max_count": 100,
            "move_thread_to_another_team_enable": False,
            "move_thread_from_private_channel_enable": False,
            "move_thread_from_direct_message_channel_enable": False,
            "move_thread_from_group_message_channel_enable": False},
        "config_feature_flags": dict(feature_flags or {"TestFeature": "off",
                                                       "AppsEnabled": "true"}),
    }


def configs_props(**kw):
    """`configs` (v10.3+): one event, every config_* section nested (config_sections' kw)."""
    return config_sections(**kw)


def config_events(**kw):
    """v10.2 and earlier: each config_* section its own event, as (event, properties)."""
    return list(config_sections(**kw).items())


def daily_events(version="10.11.0", licensed=False, nested=True, registered_users=57,
                 active_users_daily=12, config=None, license=None):
    """The daily set as (event, properties) pairs in sendDailyTelemetry's order: activity,
    configs (nested; or one config_* event each), license (only when licensed), server.
    config: config_sections' kw; license: license_props' kw."""
    config = config or {}
    out = [("activity", activity_props(registered_users=registered_users,
                                       active_users_daily=active_users_daily))]
    out += [("configs", configs_props(**config))] if nested else config_events(**config)
    if licensed:
        out.append(("license", license_props(**(license or {}))))
    out.append(("server", server_props(version=version)))
    return out


def feature_event(event="add_guest_to_channel", feature="guest_accounts", user_id=INSTALL,
                  message_id=None, **props):
    """A v10.2+ event-driven "feature" event (Go shape): raw internal ids in its
    properties, context {"feature":{"name","skus"}} and no library."""
    props = props or {"user_actual_id": random_install_id()}
    return go_track(event, props, user_id, message_id=message_id,
                    context={"feature": {"name": feature,
                                         "skus": ["professional", "enterprise"]}})
