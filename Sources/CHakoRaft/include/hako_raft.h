#ifndef HAKO_RAFT_H
#define HAKO_RAFT_H
/*
 * One Raft server (libraft, libuv I/O) on a thread of its own: every libraft
 * call happens on that thread's loop. Other threads talk to it only through
 * the thread-safe entry points below, which queue work and wake the loop.
 *
 * The transport hands libraft one end of a socketpair per peer connection;
 * the caller (Swift) carries the other end over mutual TLS: `dial` asks it to
 * connect to a peer, `hako_raft_connected` / `hako_raft_accepted` give the
 * local ends back.
 */
#include <stddef.h>
#include <stdint.h>

typedef struct hako_raft hako_raft;

/* Raft states, as libraft numbers them. */
enum { HAKO_RAFT_UNAVAILABLE = 0, HAKO_RAFT_FOLLOWER = 1, HAKO_RAFT_CANDIDATE = 2, HAKO_RAFT_LEADER = 3 };
/* What `apply` returns. */
enum { HAKO_RAFT_APPLY_OK = 0, HAKO_RAFT_APPLY_REFUSED = 1, HAKO_RAFT_APPLY_NOT_HERE = 2 };
/* `log` levels. */
enum { HAKO_RAFT_LOG_DEBUG = 0, HAKO_RAFT_LOG_WARNING = 1, HAKO_RAFT_LOG_INFO = 2 };
/* Membership changes. */
enum { HAKO_RAFT_ADD_VOTER = 1, HAKO_RAFT_REMOVE = 2, HAKO_RAFT_DEMOTE = 3 };

typedef struct hako_raft_callbacks {
    void *ctx;
    /* All called on the Raft thread. */
    /* Applies a committed entry: HAKO_RAFT_APPLY_OK, _REFUSED (the same on
     * every server: the entry is still consumed) or _NOT_HERE (this server
     * cannot apply it, e.g. a newer format: not consumed, nothing after it
     * is applied). `index` is the entry's index in the log (0: unknown). */
    int (*apply)(void *ctx, uint64_t index, const void *data, size_t len);
    /* The state machine's content; *data is malloc'd, the engine frees it. */
    int (*snapshot)(void *ctx, void **data, size_t *len);
    /* Replaces the state machine's content; 0 or nonzero on failure. */
    int (*restore)(void *ctx, const void *data, size_t len);
    /* A proposal or membership change finished: status 0 (applied and
     * accepted), a libraft error code, or -1 (applied and refused by `apply`). */
    void (*done)(void *ctx, uint64_t token, int status, const char *message);
    /* The role or the known leader changed (leader_id 0: none known). */
    void (*changed)(void *ctx, int state, uint64_t leader_id, const char *leader_address, uint64_t term);
    /* Open a connection to a peer; answer with hako_raft_connected(handle, …). */
    void (*dial)(void *ctx, uint64_t handle, uint64_t id, const char *address);
    /* The voters and their addresses, after every change (n entries). */
    void (*members)(void *ctx, unsigned n, const uint64_t *ids, const char *const *addresses, const int *roles);
    /* level: HAKO_RAFT_LOG_DEBUG, _WARNING or _INFO. */
    void (*log)(void *ctx, int level, const char *message);
    /* libraft started (optional): the last index of the log as loaded, before
     * anything is received or applied (with force_single, the configuration
     * entry that made this server the only voter). */
    void (*started)(void *ctx, uint64_t last_index);
} hako_raft_callbacks;

typedef struct hako_raft_options {
    uint64_t id;
    const char *address;
    const char *dir;
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    /* Also a snapshot once this many bytes of entries were applied since the
     * last, or as many as the last snapshot's size if that is more (0: entries only). */
    uint64_t snapshot_bytes;
    /* Entries kept behind a snapshot: at most snapshot_trailing, and at most
     * this many bytes of them (0: no bound in bytes; at least one is kept). */
    uint64_t snapshot_trailing_bytes;
    /* The first configuration, used only when `dir` holds no Raft state yet (0: none, wait to be added). */
    unsigned n_bootstrap;
    const uint64_t *bootstrap_ids;
    const char *const *bootstrap_addresses;
    /* Nonzero: replace the configuration on disk by this server alone (--force-new-cluster). */
    int force_single;
} hako_raft_options;

/* Starts the thread; 0, or an error code with `err` filled. */
int hako_raft_start(const hako_raft_options *o, const hako_raft_callbacks *cb, hako_raft **out, char *err, size_t errlen);
/* Thread-safe. Copies `data` (a nonzero multiple of 8 bytes: libraft's log
 * format pads entries to 8 and reads them back so); `done` reports the
 * outcome under `token`. */
void hako_raft_propose(hako_raft *r, uint64_t token, const void *data, size_t len);
/* Thread-safe. A membership change; `done` reports it under `token`. */
void hako_raft_change(hako_raft *r, uint64_t token, int kind, uint64_t id, const char *address);
/* Thread-safe: a dial finished (fd < 0: failed). The engine owns fd from here. */
void hako_raft_connected(hako_raft *r, uint64_t handle, int fd);
/* Thread-safe: a peer connected and was authenticated. The engine owns fd from here. */
void hako_raft_accepted(hako_raft *r, uint64_t id, const char *address, int fd);
/* Thread-safe: the bytes of the entries libraft holds in memory (counted every 20 ms). */
uint64_t hako_raft_log_bytes(hako_raft *r);
/* Stops the server, joins its thread and frees it. */
void hako_raft_stop(hako_raft *r);
const char *hako_raft_strerror(int code);

#endif
