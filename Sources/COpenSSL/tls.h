/* libssl/libcrypto macros that Swift cannot import, as functions (cluster PKI and TLS). */
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/rand.h>

static inline int hako_ssl_ctx_tls13_only(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1
        && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
}

static inline int hako_ssl_ctx_add_chain_cert(SSL_CTX *ctx, X509 *cert) {
    return (int)SSL_CTX_add1_chain_cert(ctx, cert);
}

/* Partial writes from a buffer that may move between retries (Swift arrays do). */
static inline void hako_ssl_ctx_nonblocking_writes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

static inline long hako_bio_mem_data(BIO *bio, const char **data) {
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    *data = p;
    return n;
}

static inline void hako_x509v3_ctx_nodb(X509V3_CTX *ctx) { X509V3_set_ctx_nodb(ctx); }

static inline int hako_x509_stack_count(const STACK_OF(X509) *sk) { return sk_X509_num(sk); }
static inline X509 *hako_x509_stack_at(const STACK_OF(X509) *sk, int i) { return sk_X509_value(sk, i); }

static inline void hako_openssl_free(void *p) { OPENSSL_free(p); }
