#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

// SHA-256 without a provider fetch. EVP_DigestInit_ex's first use initialises
// OpenSSL's default provider, ~0.7 ms of every hako command that reads a blob;
// the direct functions run the same assembly without it. OpenSSL 3 marks them
// deprecated, hence the wrappers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline int hako_sha256_init(SHA256_CTX *c) { return SHA256_Init(c); }
static inline int hako_sha256_update(SHA256_CTX *c, const void *data, size_t len) { return SHA256_Update(c, data, len); }
static inline int hako_sha256_final(unsigned char *out, SHA256_CTX *c) { return SHA256_Final(out, c); }
#pragma GCC diagnostic pop

// Function-like macros of OpenSSL, which Swift cannot call.
static inline long hako_ssl_set_sni(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
static inline int hako_ssl_ctx_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline int hako_ssl_ctx_min_tls13(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
}
static inline void hako_ssl_ctx_ignore_unexpected_eof(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}
/* SSL_read returns WANT_READ after a record without application data instead
   of blocking for the next one: a poll loop relaying both ways never stalls. */
static inline void hako_ssl_clear_auto_retry(SSL *ssl) {
    SSL_clear_mode(ssl, SSL_MODE_AUTO_RETRY);
}
