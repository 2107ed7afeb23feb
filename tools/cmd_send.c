/* warmline send: NDJSON pings in, envelopes out over TCP (with acks) or
 * UDP. The whole input is parsed and encoded before anything is sent, so a
 * bad line sends nothing. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "collector/envelope.h"
#include "collector/signal_json.h"
#include "collector/framing.h"
#include "collector/orgkey.h"
#include "collector/ping_json.h"
#include "ndjson_input.h"
#include "storage/keys.h"

static const char *const CMD = "send";

#define ACK_MAX_BYTES (1u << 20) /* an Ack is tiny; anything near this is garbage */

struct frame {
    uint8_t *buf; /* TCP: varint length + Envelope; UDP: the Envelope */
    size_t len;
    size_t npings;
    uint64_t batch_id;
};

void wl_usage_send(FILE *out)
{
    fprintf(out,
            "Usage: warmline send [--tcp HOST:PORT | --udp HOST:PORT] [--batch N] [--zlib]\n"
            "                     [--input FILE] [--org-salt-file FILE] [--config FILE]\n"
            "                     [--timeout SECONDS] [--first-batch-id N]\n"
            "\n"
            "Reads pings as NDJSON (one JSON object per line; blank lines are skipped)\n"
            "with the proto's field names: install_id, seq, sent_at, version, edition,\n"
            "database_type, operating_system, installation_type, the counts\n"
            "(registered_users ... posts) and features (an array of strings). The\n"
            "organization is org_key (64 hex digits, \"\" for none) or org_domain (hashed\n"
            "with the org salt). Absent fields are zero or empty; unknown fields, wrong\n"
            "types and bad hex stop the run before anything is sent. The tool does not\n"
            "apply the collector's validation, so invalid pings can be sent on purpose.\n"
            "\n"
            "Pings go out in batches of N, one Envelope each, with batch_id counting up\n"
            "from --first-batch-id.\n"
            "\n"
            "TCP (the default): delimited Envelopes, pipelined; each Ack is printed on\n"
            "stdout as it arrives, in frame order, as one JSON line:\n"
            "  {\"batch_id\":1,\"status\":\"OK\",\"accepted\":100,\"duplicates\":0,"
            "\"rejected\":0,\"message\":\"\"}\n"
            "status is OK, PARTIAL, REJECTED or RETRY_LATER. A summary goes to stderr.\n"
            "UDP: one datagram per Envelope, no acks; stderr gets\n"
            "  sent N pings in M datagrams\n"
            "\n"
            "  --tcp HOST:PORT        send over TCP (default: tcp_listen from the\n"
            "                         configuration, 0.0.0.0 and :: meaning loopback)\n"
            "  --udp HOST:PORT        send over UDP instead\n"
            "  --batch N              pings per Envelope (default 100)\n"
            "  --zlib                 compress each batch with zlib\n"
            "  --input FILE           read FILE instead of stdin ('-' is stdin)\n"
            "  --org-salt-file FILE   salt for org_domain (default: org_salt_file from the\n"
            "                         configuration; read only when a line has org_domain)\n"
            "  --config FILE          the collector's INI file (default: built-in defaults)\n"
            "  --timeout SECONDS      TCP: give up when the collector has neither taken\n"
            "                         bytes nor sent an ack for this long (default 10)\n"
            "  --first-batch-id N     batch_id of the first Envelope (default 1)\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit status: 0 everything sent (and, over TCP, every ack OK); 1 network\n"
            "failure, timeout, missing or out-of-order acks; 2 usage error, bad\n"
            "configuration or bad input (nothing sent); 3 every ack arrived but some\n"
            "was PARTIAL, REJECTED or RETRY_LATER.\n");
}

/* ---- encoding ------------------------------------------------------- */

/* Encodes the pings into frames of up to per_batch pings each. */
static int encode_frames(struct wl_ping_input *in, uint64_t per_batch, int zlib, int delimited,
                         uint64_t first_id, struct frame **out, size_t *nout)
{
    size_t nframes = (in->n + per_batch - 1) / per_batch;
    struct frame *frames = calloc(nframes ? nframes : 1, sizeof *frames);
    wl_ping **ptrs = malloc((in->n ? in->n : 1) * sizeof *ptrs);

    *out = frames;
    *nout = 0;
    if (frames == NULL || ptrs == NULL) {
        free(ptrs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < in->n; i++)
        ptrs[i] = &in->pings[i];
    for (size_t f = 0; f < nframes; f++) {
        wl_ping_batch batch = WARMLINE__V1__PING_BATCH__INIT;
        size_t start = f * per_batch;
        uint8_t *env;
        size_t envlen;

        batch.pings = ptrs + start;
        batch.n_pings = in->n - start < per_batch ? in->n - start : per_batch;
        frames[f].batch_id = first_id + f;
        frames[f].npings = batch.n_pings;
        int rc = wl_envelope_encode(&batch, zlib, frames[f].batch_id, &env, &envlen);
        if (rc != 0) {
            free(ptrs);
            return rc;
        }
        *nout = f + 1;
        if (!delimited) {
            frames[f].buf = env;
            frames[f].len = envlen;
            continue;
        }
        uint8_t hdr[WL_VARINT_MAX];
        size_t hlen = wl_varint_encode(envlen, hdr);
        frames[f].buf = malloc(hlen + envlen);
        if (frames[f].buf == NULL) {
            free(env);
            free(ptrs);
            return -ENOMEM;
        }
        memcpy(frames[f].buf, hdr, hlen);
        memcpy(frames[f].buf + hlen, env, envlen);
        frames[f].len = hlen + envlen;
        free(env);
    }
    free(ptrs);
    return 0;
}

static void free_frames(struct frame *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(frames[i].buf);
    free(frames);
}

/* ---- network -------------------------------------------------------- */

struct target {
    int tcp;
    char host[256];
    char port[8];
    char text[300]; /* as the user wrote it, for messages */
};

static int parse_target(const char *s, int tcp, struct target *t)
{
    int port;

    if (wl_parse_hostport(s, t->host, sizeof t->host, &port) != 0 || port == 0)
        return -EINVAL;
    if (strcmp(t->host, "0.0.0.0") == 0)
        snprintf(t->host, sizeof t->host, "127.0.0.1");
    else if (strcmp(t->host, "::") == 0)
        snprintf(t->host, sizeof t->host, "::1");
    snprintf(t->port, sizeof t->port, "%d", port);
    snprintf(t->text, sizeof t->text, "%s", s);
    t->tcp = tcp;
    return 0;
}

/* Waits up to timeout_ms for a non-blocking connect to finish. */
static int finish_connect(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int n;
    int soerr = 0;
    socklen_t len = sizeof soerr;

    while ((n = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (n == 0)
        return -ETIMEDOUT;
    if (n < 0)
        return -errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        return -errno;
    return -soerr;
}

/* Returns a connected socket (non-blocking for TCP) or -1 after printing. */
static int open_socket(const struct target *t, int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = t->tcp ? SOCK_STREAM : SOCK_DGRAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(t->host, t->port, &hints, &res);
    int err = 0;

    if (gai != 0) {
        wl_cli_error(CMD, "cannot resolve %s: %s", t->text, gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (t->tcp && fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
            err = errno;
            close(fd);
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
        if (rc == -EINPROGRESS)
            rc = finish_connect(fd, timeout_ms);
        if (rc == 0) {
            freeaddrinfo(res);
            return fd;
        }
        err = -rc;
        close(fd);
    }
    freeaddrinfo(res);
    wl_cli_error(CMD, "cannot connect to %s %s: %s", t->tcp ? "tcp" : "udp", t->text,
                 strerror(err));
    return -1;
}

static int send_udp(const struct target *t, const struct frame *frames, size_t n)
{
    size_t pings = 0;
    int fd = open_socket(t, 0);

    if (fd < 0)
        return WL_EXIT_FAIL;
    for (size_t i = 0; i < n; i++) {
        ssize_t w;
        while ((w = send(fd, frames[i].buf, frames[i].len, 0)) < 0 && errno == EINTR)
            ;
        if (w < 0) {
            int e = errno;
            fprintf(stderr, "sent %zu pings in %zu datagrams\n", pings, i);
            if (e == EMSGSIZE)
                wl_cli_error(CMD, "batch %llu: a %zu-byte envelope does not fit in a datagram; "
                             "use a smaller --batch or --zlib",
                             (unsigned long long)frames[i].batch_id, frames[i].len);
            else
                wl_cli_error(CMD, "udp %s: %s", t->text, strerror(e));
            close(fd);
            return WL_EXIT_FAIL;
        }
        pings += frames[i].npings;
    }
    close(fd);
    fprintf(stderr, "sent %zu pings in %zu datagrams\n", pings, n);
    return WL_EXIT_OK;
}

struct ack_tally {
    size_t received;
    size_t by_status[4]; /* OK, PARTIAL, REJECTED, RETRY_LATER */
    size_t other;
    int out_of_order;
};

static const char *status_name(int status)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&warmline__v1__ack__status__descriptor, status);
    return v != NULL ? v->name : NULL;
}

/* Prints one Ack as a JSON line and counts it. Returns 0 or -EPROTO. */
static int take_ack(const uint8_t *buf, size_t len, const struct frame *expect,
                    struct ack_tally *tally)
{
    Warmline__V1__Ack *ack = warmline__v1__ack__unpack(NULL, len, buf);
    char unknown[32];

    if (ack == NULL) {
        wl_cli_error(CMD, "ack %zu: %zu bytes that do not decode as an Ack", tally->received + 1,
                     len);
        return -EPROTO;
    }
    const char *name = status_name((int)ack->status);
    if (name == NULL) {
        snprintf(unknown, sizeof unknown, "STATUS_%d", (int)ack->status);
        name = unknown;
    }
    json_t *o = json_object();
    json_object_set_new(o, "batch_id", wl_json_u64(ack->batch_id));
    json_object_set_new(o, "status", json_string(name));
    json_object_set_new(o, "accepted", json_integer(ack->accepted));
    json_object_set_new(o, "duplicates", json_integer(ack->duplicates));
    json_object_set_new(o, "rejected", json_integer(ack->rejected));
    json_object_set_new(o, "message",
                        wl_json_string_lossy(ack->message, ack->message ? strlen(ack->message) : 0));
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);

    tally->received++;
    if ((unsigned)ack->status < 4)
        tally->by_status[ack->status]++;
    else
        tally->other++;
    if (ack->batch_id != expect->batch_id && !tally->out_of_order) {
        wl_cli_error(CMD, "ack for batch_id %llu where %llu was due (acks come in frame order)",
                     (unsigned long long)ack->batch_id, (unsigned long long)expect->batch_id);
        tally->out_of_order = 1;
    }
    warmline__v1__ack__free_unpacked(ack, NULL);
    return 0;
}

/* Growable receive buffer. */
struct rbuf {
    uint8_t *data;
    size_t len, cap;
};

/* When acks went missing, says why if a frame was over the configured cap
 * (the collector closes the connection on such a frame without an ack). */
static void hint_too_large(const struct frame *frames, size_t from, size_t n, uint64_t max_frame)
{
    for (size_t i = from; i < n; i++) {
        if (frames[i].len > max_frame) {
            wl_cli_error(CMD, "batch %llu is a %zu-byte frame, over max_frame_bytes=%llu; "
                         "use a smaller --batch or --zlib",
                         (unsigned long long)frames[i].batch_id, frames[i].len,
                         (unsigned long long)max_frame);
            return;
        }
    }
}

static int send_tcp(const struct target *t, const struct frame *frames, size_t n, int timeout_ms,
                    uint64_t max_frame)
{
    struct ack_tally tally = {0};
    struct rbuf in = {0};
    size_t next = 0, off = 0, pings = 0;
    int send_err = 0, eof = 0, failed = 0;
    int fd = open_socket(t, timeout_ms);

    if (fd < 0)
        return WL_EXIT_FAIL;
    for (size_t i = 0; i < n; i++)
        pings += frames[i].npings;

    while (tally.received < n && !failed && !eof) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (next < n && send_err == 0)
            pfd.events |= POLLOUT;
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            wl_cli_error(CMD, "poll: %s", strerror(errno));
            failed = 1;
            break;
        }
        if (pr == 0) {
            wl_cli_error(CMD, "timeout: no progress from %s for %.3gs; sent %zu of %zu frames, "
                         "received %zu acks", t->text, timeout_ms / 1000.0, next, n,
                         tally.received);
            failed = 1;
            break;
        }
        /* Send as much as the socket takes. */
        while ((pfd.revents & POLLOUT) && next < n && send_err == 0) {
            ssize_t w = send(fd, frames[next].buf + off, frames[next].len - off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    send_err = errno; /* keep reading: acks may still be on their way */
                break;
            }
            off += (size_t)w;
            if (off == frames[next].len) {
                next++;
                off = 0;
            }
        }
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (in.cap - in.len < 4096) {
            size_t ncap = in.cap ? 2 * in.cap : 16384;
            uint8_t *nd = realloc(in.data, ncap);
            if (nd == NULL) {
                wl_cli_error(CMD, "out of memory");
                failed = 1;
                break;
            }
            in.data = nd;
            in.cap = ncap;
        }
        ssize_t r = recv(fd, in.data + in.len, in.cap - in.len, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            if (send_err == 0)
                send_err = errno;
            eof = 1;
            break;
        }
        if (r == 0) {
            eof = 1;
        }
        in.len += (size_t)r;
        /* Take every whole Ack in the buffer. */
        size_t pos = 0;
        while (!failed && tally.received < n) {
            size_t hdr, len;
            enum wl_frame_status st =
                wl_frame_parse(in.data + pos, in.len - pos, ACK_MAX_BYTES, &hdr, &len);
            if (st == WL_FRAME_NEED_MORE)
                break;
            if (st != WL_FRAME_READY) {
                wl_cli_error(CMD, "the collector sent a malformed frame (%s)",
                             st == WL_FRAME_TOO_LARGE ? "too large" : "bad length varint");
                failed = 1;
                break;
            }
            if (take_ack(in.data + pos + hdr, len, &frames[tally.received], &tally) != 0)
                failed = 1;
            pos += hdr + len;
        }
        memmove(in.data, in.data + pos, in.len - pos);
        in.len -= pos;
    }
    close(fd);
    free(in.data);

    if (!failed && tally.received < n) {
        wl_cli_error(CMD, "%s closed the connection after %zu of %zu acks%s%s", t->text,
                     tally.received, n, send_err ? ": " : "", send_err ? strerror(send_err) : "");
        hint_too_large(frames, tally.received, n, max_frame);
        failed = 1;
    }
    if (fflush(stdout) != 0) {
        wl_cli_error(CMD, "cannot write the acks to stdout");
        failed = 1;
    }
    fprintf(stderr,
            "sent %zu pings in %zu frames; acks: ok=%zu partial=%zu rejected=%zu "
            "retry_later=%zu missing=%zu\n",
            pings, n, tally.by_status[0], tally.by_status[1], tally.by_status[2],
            tally.by_status[3], n - tally.received);
    if (failed || tally.out_of_order)
        return WL_EXIT_FAIL;
    return tally.by_status[0] == n ? WL_EXIT_OK : WL_EXIT_NOT_OK;
}

/* ---- main ----------------------------------------------------------- */

int wl_cmd_send(int argc, char **argv)
{
    enum { OPT_UDP = 256, OPT_TCP, OPT_BATCH, OPT_ZLIB, OPT_INPUT, OPT_SALT, OPT_CONFIG,
           OPT_TIMEOUT, OPT_FIRST_ID };
    static const struct option opts[] = {
        {"udp", required_argument, NULL, OPT_UDP},
        {"tcp", required_argument, NULL, OPT_TCP},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"zlib", no_argument, NULL, OPT_ZLIB},
        {"input", required_argument, NULL, OPT_INPUT},
        {"org-salt-file", required_argument, NULL, OPT_SALT},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"first-batch-id", required_argument, NULL, OPT_FIRST_ID},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *udp = NULL, *tcp = NULL, *input = NULL, *config_path = NULL;
    uint64_t per_batch = 100, first_id = 1;
    double timeout = 10;
    int zlib = 0, c, rc;
    struct wl_config cfg;
    struct wl_org_salt salt = {0};
    struct wl_ping_input pings = {0};
    struct frame *frames = NULL;
    size_t nframes = 0;
    struct target target;
    FILE *in = stdin;

    while ((c = wl_cli_getopt(CMD, argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case OPT_UDP: udp = optarg; break;
        case OPT_TCP: tcp = optarg; break;
        case OPT_BATCH:
            if (wl_cli_parse_u64(optarg, &per_batch) != 0 || per_batch == 0 ||
                per_batch > 10000000)
                return wl_cli_usage_error(CMD, "--batch: '%s' is not a number from 1 to 10000000",
                                          optarg);
            break;
        case OPT_ZLIB: zlib = 1; break;
        case OPT_INPUT: input = optarg; break;
        case OPT_SALT: salt.path = optarg; break;
        case OPT_CONFIG: config_path = optarg; break;
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            timeout = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(timeout > 0) ||
                timeout > 86400)
                return wl_cli_usage_error(CMD, "--timeout: '%s' is not a number of seconds "
                                          "above 0 (at most 86400)", optarg);
            break;
        }
        case OPT_FIRST_ID:
            if (wl_cli_parse_u64(optarg, &first_id) != 0)
                return wl_cli_usage_error(CMD, "--first-batch-id: '%s' is not a whole number",
                                          optarg);
            break;
        case 'h': wl_usage_send(stdout); return WL_EXIT_OK;
        default: return WL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return wl_cli_usage_error(CMD, "unexpected argument '%s' (the input is --input FILE "
                                  "or stdin)", argv[optind]);
    if (udp != NULL && tcp != NULL)
        return wl_cli_usage_error(CMD, "--udp and --tcp exclude each other");
    if ((rc = wl_cli_config(CMD, config_path, &cfg)) != 0)
        return rc;
    wl_config_free(&cfg); /* the rules are not needed here; the options stay */
    if (udp == NULL && tcp == NULL) {
        if (cfg.tcp_listen[0] == '\0')
            return wl_cli_usage_error(CMD, "no target: tcp_listen is empty in the "
                                      "configuration; pass --tcp or --udp HOST:PORT");
        tcp = cfg.tcp_listen;
    }
    if (parse_target(udp != NULL ? udp : tcp, udp == NULL, &target) != 0)
        return wl_cli_usage_error(CMD, "%s: '%s' is not HOST:PORT with a port from 1 to 65535",
                                  udp != NULL ? "--udp" : "--tcp", udp != NULL ? udp : tcp);
    if (salt.path == NULL)
        salt.path = cfg.org_salt_file;

    const char *in_name = "<stdin>";
    if (input != NULL && strcmp(input, "-") != 0) {
        in = fopen(input, "r");
        if (in == NULL) {
            wl_cli_error(CMD, "%s: %s", input, strerror(errno));
            return WL_EXIT_USAGE;
        }
        in_name = input;
    }
    rc = wl_ping_input_read(CMD, in, in_name, &salt, &pings);
    if (in != stdin)
        fclose(in);
    if (rc != 0)
        goto done;

    if (first_id > UINT64_MAX - (pings.n / per_batch + 1)) {
        rc = wl_cli_usage_error(CMD, "--first-batch-id: too large for %zu batches",
                                (size_t)(pings.n / per_batch + 1));
        goto done;
    }
    if (encode_frames(&pings, per_batch, zlib, target.tcp, first_id, &frames, &nframes) != 0) {
        wl_cli_error(CMD, "cannot encode the batches: out of memory");
        rc = WL_EXIT_FAIL;
        goto done;
    }
    if (nframes == 0) {
        fprintf(stderr, "sent 0 pings in 0 %s\n", target.tcp ? "frames" : "datagrams");
        rc = WL_EXIT_OK;
    } else if (target.tcp) {
        rc = send_tcp(&target, frames, nframes, (int)(timeout * 1000 + 0.999),
                      cfg.max_frame_bytes);
    } else {
        rc = send_udp(&target, frames, nframes);
    }

done:
    free_frames(frames, nframes);
    wl_ping_input_free(&pings);
    wl_org_salt_free(&salt);
    return rc;
}
