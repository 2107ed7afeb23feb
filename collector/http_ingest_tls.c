/* The HTTP ingest listener's TLS files: the certificate (chain) and private
 * key of http_tls_cert_file and http_tls_key_file, read once at start into
 * memory for libmicrohttpd (MHD_OPTION_HTTPS_MEM_CERT/KEY) and checked with
 * GnuTLS, the library libmicrohttpd itself hands them to, so a file that
 * start or --check-config accepts is one the listener can serve with. Runs
 * on the starting thread only. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_ingest_parts.h"

/* Reads a whole regular file of at most WL_TLS_FILE_MAX bytes, NUL-terminated. */
static int read_pem(const char *option, const char *path, char **out, size_t *len, char *err,
                    size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s %s: cannot open: %s", option, path, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s %s: not a regular file", option, path);
        rc = -EINVAL;
        goto fail;
    }
    if (st.st_size > WL_TLS_FILE_MAX) {
        snprintf(err, errlen, "%s %s: over %d bytes, not a PEM file", option, path,
                 WL_TLS_FILE_MAX);
        rc = -EFBIG;
        goto fail;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            snprintf(err, errlen, "%s %s: cannot read: %s", option, path,
                     n < 0 ? strerror(errno) : "it shrank while read");
            goto fail;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    *out = buf;
    *len = got;
    return 0;

fail:
    if (buf != NULL) {
        explicit_bzero(buf, (size_t)st.st_size + 1);
        free(buf);
    }
    close(fd);
    return rc;
}

/* The certificate parses, the key parses, and they belong together. */
static int check_pair(const struct wl_http_tls *t, const char *cert_file, const char *key_file,
                      char *err, size_t errlen)
{
    gnutls_datum_t cd = {(unsigned char *)t->cert, (unsigned)t->cert_len};
    gnutls_datum_t kd = {(unsigned char *)t->key, (unsigned)t->key_len};
    gnutls_x509_crt_t *crts = NULL;
    gnutls_x509_privkey_t key = NULL;
    gnutls_certificate_credentials_t cred = NULL;
    unsigned n = 0;
    int g, rc = -EINVAL;

    if ((g = gnutls_x509_crt_list_import2(&crts, &n, &cd, GNUTLS_X509_FMT_PEM, 0)) < 0 ||
        n == 0) {
        snprintf(err, errlen, "http_tls_cert_file %s: not a PEM certificate (%s)", cert_file,
                 g < 0 ? gnutls_strerror(g) : "none in it");
        goto done;
    }
    if ((g = gnutls_x509_privkey_init(&key)) < 0 ||
        (g = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen,
                 "http_tls_key_file %s: not an unencrypted PEM private key (%s)", key_file,
                 gnutls_strerror(g));
        goto done;
    }
    if ((g = gnutls_certificate_allocate_credentials(&cred)) < 0) {
        snprintf(err, errlen, "http_tls_cert_file: %s", gnutls_strerror(g));
        rc = -ENOMEM;
        goto done;
    }
    if ((g = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL,
                                                  0)) < 0) {
        snprintf(err, errlen, "http_tls_key_file %s does not go with http_tls_cert_file %s (%s)",
                 key_file, cert_file, gnutls_strerror(g));
        goto done;
    }
    rc = 0;

done:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (key != NULL)
        gnutls_x509_privkey_deinit(key);
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    return rc;
}

int wl_http_tls_load(const char *cert_file, const char *key_file, struct wl_http_tls *out,
                     char *err, size_t errlen)
{
    int rc;

    memset(out, 0, sizeof *out);
    if (cert_file[0] == '\0' && key_file[0] == '\0')
        return 0;
    if (cert_file[0] == '\0' || key_file[0] == '\0') {
        snprintf(err, errlen, "http_tls_cert_file and http_tls_key_file go together");
        return -EINVAL;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "http_tls_cert_file: this libmicrohttpd was built without TLS");
        return -ENOTSUP;
    }
    if ((rc = read_pem("http_tls_cert_file", cert_file, &out->cert, &out->cert_len, err,
                       errlen)) != 0 ||
        (rc = read_pem("http_tls_key_file", key_file, &out->key, &out->key_len, err,
                       errlen)) != 0 ||
        (rc = check_pair(out, cert_file, key_file, err, errlen)) != 0) {
        wl_http_tls_free(out);
        return rc;
    }
    return 0;
}

void wl_http_tls_free(struct wl_http_tls *t)
{
    if (t->key != NULL)
        explicit_bzero(t->key, t->key_len);
    free(t->key);
    free(t->cert);
    memset(t, 0, sizeof *t);
}
