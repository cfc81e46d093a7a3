/* One Raft server on its own libuv thread (see include/hako_raft.h). */
#include "hako_raft.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

/* Work handed to the loop thread by other threads. */
enum { EV_PROPOSE = 1, EV_CHANGE, EV_CONNECTED, EV_ACCEPTED };
struct event {
    struct event *next;
    int kind;
    uint64_t token; /* propose/change token, dial handle */
    uint64_t id;
    int fd;
    int change;
    char *address;
    void *data; /* a proposal's entry, from raft_malloc */
    size_t len;
};

/* A connect request libraft made, waiting for its dial. */
struct dialing {
    struct dialing *next;
    uint64_t handle;
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
};

struct proposal {
    struct raft_apply req;
    uint64_t token;
    struct hako_raft *r;
};

struct change {
    struct raft_change req;
    uint64_t token;
    uint64_t id;
    int kind;
    struct hako_raft *r;
};

struct hako_raft {
    hako_raft_callbacks cb;
    hako_raft_options opt;
    char *address;
    char *dir;
    pthread_t thread;
    sem_t started;
    int start_rc;
    char start_err[256];

    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t poll;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    struct raft_uv_transport transport;
    raft_uv_accept_cb accept_cb;
    struct dialing *dialing;
    uint64_t next_handle;
    int closing;

    pthread_mutex_t lock;
    struct event *head, *tail;
    int stopping;

    /* Bytes of entries applied since the last snapshot (snapshot_bytes). */
    uint64_t applied_bytes;
    /* The size of the last snapshot taken (snapshot_due_bytes). */
    uint64_t last_snapshot_bytes;
    /* Bytes of the entries in libraft's memory, as on_poll last counted them (atomic). */
    uint64_t log_bytes;

    /* libraft's own append (the libuv backend's), wrapped by wrapped_append. */
    int (*uv_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[], unsigned, raft_io_append_cb);
    /* Appends that failed in a row (0: the log is written); Raft restarts
     * from its disk after each (`restart`), with backoff. */
    unsigned append_failures;
    /* Appends handed to the libuv backend and not yet called back. */
    unsigned appends_in_flight;
    /* Polls in a row that found a follower's entries unwritten with no write under way. */
    unsigned stalled_polls;
    /* libraft: open, being closed for a restart, or closed until it starts again. */
    enum { LIFE_OPEN, LIFE_CLOSING, LIFE_CLOSED } life;
    int restart_scheduled;
    uv_timer_t restart;

    /* What `changed` and `members` last reported. */
    int last_state;
    raft_id last_leader;
    raft_term last_term;
    raft_index last_configuration;
};

const char *hako_raft_strerror(int code) { return raft_strerror(code); }

/* ---- the state machine: trampolines to the caller ---- */

/* The index of the entry being applied, whose bytes are `buf`: libraft 0.15
 * applies from one loop only (replicationApply: `for index = last_applied+1
 * … commit_index`, last_applied set after each entry, commands, barriers and
 * configuration changes alike), so it is the one after last_applied. It is
 * checked against libraft's in-memory log (raft.h's struct raft_log, a
 * circular buffer whose first entry has index offset+1): the entry at that
 * index must be this very buffer. 0 if it is not (nothing is then skipped). */
/* The entry at `index` in libraft's in-memory log, or NULL. */
static const struct raft_entry *entry_at(const struct hako_raft *r, raft_index index) {
    const struct raft_log *l = &r->raft.log;
    size_t n = l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
    if (index <= l->offset || index - l->offset > n) return NULL;
    return &l->entries[(l->front + (size_t)(index - 1 - l->offset)) % l->size];
}

static uint64_t entry_index(struct hako_raft *r, const struct raft_buffer *buf) {
    raft_index index = raft_last_applied(&r->raft) + 1;
    const struct raft_entry *e = entry_at(r, index);
    if (e != NULL && e->buf.base == buf->base && e->buf.len == buf->len) return index;
    r->cb.log(r->cb.ctx, HAKO_RAFT_LOG_WARNING, "the entry applied is not the one after the last applied in libraft's log: its index is unknown (it is applied, and will be again if the log is replayed)");
    return 0;
}

/* Bytes of entries applied after which a snapshot is due: snapshot_bytes, or
 * the last snapshot's size if larger, so that snapshots never write more than
 * the entries they replace (a store of 200,000 tasks is a 70 MB image). */
static uint64_t snapshot_due_bytes(const struct hako_raft *r) {
    return r->last_snapshot_bytes > r->opt.snapshot_bytes ? r->last_snapshot_bytes : r->opt.snapshot_bytes;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result) {
    struct hako_raft *r = fsm->data;
    int rc = r->cb.apply(r->cb.ctx, entry_index(r, buf), buf->base, buf->len);
    /* Not applicable here (a format this server does not read): not consumed.
     * libraft applies nothing after it; a follower stops (unavailable) until
     * it is restarted by a hako that reads it. */
    if (rc == HAKO_RAFT_APPLY_NOT_HERE) return RAFT_IOERR;
    /* A refused entry is consumed all the same (every server refuses it alike);
     * the proposer learns of it through the result. */
    *result = rc == HAKO_RAFT_APPLY_OK ? NULL : (void *)1;
    /* libraft counts entries only: past snapshot_bytes of entries, the next
     * check (right after this apply) takes a snapshot; fsm_snapshot sets the
     * entry threshold back. */
    r->applied_bytes += buf->len;
    if (r->opt.snapshot_bytes && r->applied_bytes >= snapshot_due_bytes(r)) raft_set_snapshot_threshold(&r->raft, 1);
    return 0;
}

/* How long a leader waits for a follower to answer the snapshot it sent
 * before it probes it again. libraft 0.15's progress leaves a follower in
 * "snapshot" until then when it answers with the index the leader already had
 * for it (a follower wiped and back under its id: progressMaybeUpdate sees
 * nothing new), so that follower got nothing more for libraft's default
 * 30 s. 5 s, plus 1 ms per KiB of the snapshot (about 1 MiB/s to send it). */
static unsigned install_timeout_ms(size_t snapshot_len) {
    uint64_t ms = 5000 + snapshot_len / 1024;
    return ms > 600000 ? 600000 : (unsigned)ms;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs) {
    struct hako_raft *r = fsm->data;
    void *data = NULL;
    size_t len = 0;
    if (r->cb.snapshot(r->cb.ctx, &data, &len) != 0 || data == NULL) return RAFT_IOERR;
    r->applied_bytes = 0;
    r->last_snapshot_bytes = len;
    raft_set_install_snapshot_timeout(&r->raft, install_timeout_ms(len));
    /* The entries kept behind the snapshot (for followers a little behind):
     * at most snapshot_trailing, and no more bytes than snapshot_trailing_bytes
     * (at least one: libuv's backend takes none as a snapshot installed). The
     * snapshot is taken at last_applied; libraft reads the count after this. */
    if (r->opt.snapshot_trailing_bytes) {
        unsigned keep = 0;
        uint64_t bytes = 0;
        for (raft_index i = raft_last_applied(&r->raft); i > 0 && keep < r->opt.snapshot_trailing; i--) {
            const struct raft_entry *e = entry_at(r, i);
            if (e == NULL || (keep > 0 && bytes + e->buf.len > r->opt.snapshot_trailing_bytes)) break;
            bytes += e->buf.len;
            keep++;
        }
        raft_set_snapshot_trailing(&r->raft, keep ? keep : 1);
    }
    raft_set_snapshot_threshold(&r->raft, r->opt.snapshot_threshold);
    void *copy = raft_malloc(len ? len : 1);
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (copy == NULL || b == NULL) {
        raft_free(copy);
        raft_free(b);
        free(data);
        return RAFT_NOMEM;
    }
    memcpy(copy, data, len);
    free(data);
    b->base = copy;
    b->len = len;
    *bufs = b; /* version 1: libraft frees the buffers and the array */
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf) {
    struct hako_raft *r = fsm->data;
    if (r->cb.restore(r->cb.ctx, buf->base, buf->len) != 0) return RAFT_IOERR;
    r->applied_bytes = 0;
    raft_free(buf->base); /* ours once restored */
    return 0;
}

/* ---- the log's writes: a failed append restarts Raft from its disk ----
 *
 * libraft 0.15 goes on after an append that failed (a full disk): the entries
 * stay in its memory, unwritten, and each later write counts as that many
 * more entries stored (last_stored), so a follower's commit index moves one
 * entry per write and the entries it missed are never written again. So a
 * failure is said once and Raft is closed and started again from what its
 * disk holds — the leader then sends what is missing — with backoff (0.2 s
 * doubling to 2 s) while the writes fail. Entries the store already holds
 * that the restart replays are skipped there (the store's applied mark). */

struct wrapped {
    struct raft_io_append inner;
    struct raft_io_append *outer;
    raft_io_append_cb cb;
    struct hako_raft *r;
};

static void schedule_restart(struct hako_raft *r);

static void wrapped_append_cb(struct raft_io_append *req, int status) {
    struct wrapped *w = req->data;
    struct hako_raft *r = w->r;
    struct raft_io_append *outer = w->outer;
    raft_io_append_cb cb = w->cb;
    free(w);
    r->appends_in_flight--;
    if (status == 0 && r->append_failures > 0) {
        r->append_failures = 0;
        r->cb.log(r->cb.ctx, HAKO_RAFT_LOG_INFO, "the Raft log on this coordinator's disk takes entries again: catching up");
    } else if (status != 0 && status != RAFT_CANCELED && !r->closing && r->life == LIFE_OPEN) {
        if (r->append_failures++ == 0) {
            char m[512];
            snprintf(m, sizeof m, "cannot write log entries to this coordinator's disk: %s (%s); starting Raft again from its disk until it can (the other coordinators go on meanwhile)",
                     raft_strerror(status), r->io.errmsg);
            r->cb.log(r->cb.ctx, HAKO_RAFT_LOG_WARNING, m);
        }
        schedule_restart(r);
    }
    cb(outer, status);
}

static int wrapped_append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[], unsigned n,
                          raft_io_append_cb cb) {
    struct hako_raft *r = (struct hako_raft *)((char *)io - offsetof(struct hako_raft, io));
    struct wrapped *w = calloc(1, sizeof *w);
    if (w == NULL) return RAFT_NOMEM;
    w->outer = req;
    w->cb = cb;
    w->r = r;
    w->inner.data = w;
    int rv = r->uv_append(io, &w->inner, entries, n, wrapped_append_cb);
    if (rv != 0) free(w);
    else r->appends_in_flight++;
    return rv;
}

static void close_handles(struct hako_raft *r) {
    uv_close((uv_handle_t *)&r->poll, NULL);
    uv_close((uv_handle_t *)&r->wake, NULL);
    uv_close((uv_handle_t *)&r->restart, NULL);
}

static int open_raft(struct hako_raft *r, int first, int *opened);
static void on_restart_timer(uv_timer_t *t);

static void start_restart_timer(struct hako_raft *r) {
    unsigned shift = r->append_failures > 5 ? 4 : (r->append_failures ? r->append_failures - 1 : 0);
    uint64_t delay = (uint64_t)200 << shift;
    r->restart_scheduled = 1;
    uv_timer_start(&r->restart, on_restart_timer, delay > 2000 ? 2000 : delay, 0);
}

static void closed_for_restart(struct raft *raft) {
    struct hako_raft *r = raft->data;
    raft_uv_close(&r->io);
    r->life = LIFE_CLOSED;
    /* Stopped meanwhile: the handles go now (on_wake left them). */
    if (r->closing) close_handles(r);
    else start_restart_timer(r);
}

static void on_restart_timer(uv_timer_t *t) {
    struct hako_raft *r = t->data;
    r->restart_scheduled = 0;
    if (r->closing || r->life != LIFE_CLOSED) return;
    int opened = 0;
    if (open_raft(r, 0, &opened) != 0) {
        r->cb.log(r->cb.ctx, r->append_failures > 1 ? HAKO_RAFT_LOG_DEBUG : HAKO_RAFT_LOG_WARNING, r->start_err);
        if (r->append_failures == 0) r->append_failures = 1;
        if (opened) {
            /* libraft was initialized: closed again, then the timer. */
            r->life = LIFE_CLOSING;
            r->restart_scheduled = 1;
            raft_close(&r->raft, closed_for_restart);
        } else {
            start_restart_timer(r);
        }
        return;
    }
    r->life = LIFE_OPEN;
    r->last_state = -1;
    r->last_configuration = 0;
    r->stalled_polls = 0;
    r->cb.log(r->cb.ctx, HAKO_RAFT_LOG_DEBUG, "Raft started again from this coordinator's disk");
}

/* Closes libraft and starts it again after the backoff. */
static void schedule_restart(struct hako_raft *r) {
    if (r->closing || r->restart_scheduled || r->life != LIFE_OPEN) return;
    r->restart_scheduled = 1;
    r->life = LIFE_CLOSING;
    raft_close(&r->raft, closed_for_restart);
}

/* ---- the transport: socketpair ends the caller carries over TLS ---- */

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address) {
    (void)t; (void)id; (void)address;
    return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
    struct hako_raft *r = t->impl;
    r->accept_cb = cb;
    return 0;
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id, const char *address,
                      raft_uv_connect_cb cb) {
    struct hako_raft *r = t->impl;
    struct dialing *d = calloc(1, sizeof *d);
    if (d == NULL) return RAFT_NOMEM;
    d->handle = ++r->next_handle;
    d->req = req;
    d->cb = cb;
    d->next = r->dialing;
    r->dialing = d;
    r->cb.dial(r->cb.ctx, d->handle, id, address);
    return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb) {
    struct hako_raft *r = t->impl;
    r->accept_cb = NULL;
    while (r->dialing) {
        struct dialing *d = r->dialing;
        r->dialing = d->next;
        d->cb(d->req, NULL, RAFT_CANCELED);
        free(d);
    }
    cb(t);
}

/* A stream over one end of a socketpair, allocated as libraft frees it. */
static uv_stream_t *stream_over(struct hako_raft *r, int fd) {
    uv_pipe_t *p = raft_malloc(sizeof *p);
    if (p == NULL) return NULL;
    if (uv_pipe_init(&r->loop, p, 0) != 0) {
        raft_free(p);
        return NULL;
    }
    if (uv_pipe_open(p, fd) != 0) {
        /* Not opened: the handle is closed (and freed) without touching fd. */
        uv_close((uv_handle_t *)p, (uv_close_cb)raft_free);
        return NULL;
    }
    return (uv_stream_t *)p;
}

/* ---- requests ---- */

static void proposal_done(struct raft_apply *req, int status, void *result) {
    struct proposal *p = req->data;
    struct hako_raft *r = p->r;
    if (status == 0 && result != NULL) r->cb.done(r->cb.ctx, p->token, -1, "refused by the state machine");
    else r->cb.done(r->cb.ctx, p->token, status, status == 0 ? "" : raft_strerror(status));
    free(p);
}

static void change_done(struct raft_change *req, int status) {
    struct change *c = req->data;
    struct hako_raft *r = c->r;
    if (status == 0 && c->kind == HAKO_RAFT_ADD_VOTER) {
        /* Added as a spare; now a voter (libraft catches it up first). */
        c->kind = 0;
        int rv = raft_assign(&r->raft, &c->req, c->id, RAFT_VOTER, change_done);
        if (rv == 0) return;
        status = rv;
    }
    r->cb.done(r->cb.ctx, c->token, status, status == 0 ? "" : raft_strerror(status));
    free(c);
}

static void do_event(struct hako_raft *r, struct event *e) {
    int rv;
    switch (e->kind) {
    case EV_PROPOSE: {
        if (e->len == 0 || e->len % 8 != 0) {
            /* libraft's segments store each entry padded to 8 bytes and load it
             * back at that length: anything else would be misread after a restart. */
            r->cb.done(r->cb.ctx, e->token, RAFT_INVALID, "an entry must be a multiple of 8 bytes long");
            break;
        }
        struct proposal *p = calloc(1, sizeof *p);
        if (p == NULL) {
            r->cb.done(r->cb.ctx, e->token, RAFT_NOMEM, raft_strerror(RAFT_NOMEM));
            break;
        }
        /* The entry's bytes, copied once by hako_raft_propose into a buffer of
         * libraft's allocator: libraft owns them from here. */
        struct raft_buffer buf = {e->data, e->len};
        e->data = NULL;
        p->token = e->token;
        p->r = r;
        p->req.data = p;
        rv = r->closing ? RAFT_SHUTDOWN : r->life != LIFE_OPEN ? RAFT_NOTLEADER : raft_apply(&r->raft, &p->req, &buf, 1, proposal_done);
        if (rv != 0) {
            raft_free(buf.base);
            free(p);
            r->cb.done(r->cb.ctx, e->token, rv, raft_strerror(rv));
        }
        break;
    }
    case EV_CHANGE: {
        struct change *c = calloc(1, sizeof *c);
        if (c == NULL) {
            r->cb.done(r->cb.ctx, e->token, RAFT_NOMEM, raft_strerror(RAFT_NOMEM));
            break;
        }
        c->token = e->token;
        c->id = e->id;
        c->kind = e->change;
        c->r = r;
        c->req.data = c;
        if (r->closing) rv = RAFT_SHUTDOWN;
        else if (r->life != LIFE_OPEN) rv = RAFT_NOTLEADER;
        else if (e->change == HAKO_RAFT_ADD_VOTER) rv = raft_add(&r->raft, &c->req, e->id, e->address, change_done);
        else if (e->change == HAKO_RAFT_DEMOTE) rv = raft_assign(&r->raft, &c->req, e->id, RAFT_SPARE, change_done);
        else rv = raft_remove(&r->raft, &c->req, e->id, change_done);
        if (rv != 0) {
            free(c);
            r->cb.done(r->cb.ctx, e->token, rv, raft_strerror(rv));
        }
        break;
    }
    case EV_CONNECTED: {
        struct dialing **pp = &r->dialing, *d = NULL;
        while (*pp) {
            if ((*pp)->handle == e->token) {
                d = *pp;
                *pp = d->next;
                break;
            }
            pp = &(*pp)->next;
        }
        if (d == NULL) { /* cancelled meanwhile */
            if (e->fd >= 0) close(e->fd);
            break;
        }
        uv_stream_t *s = e->fd >= 0 ? stream_over(r, e->fd) : NULL;
        if (s == NULL && e->fd >= 0) close(e->fd);
        d->cb(d->req, s, s ? 0 : RAFT_NOCONNECTION);
        free(d);
        break;
    }
    case EV_ACCEPTED: {
        if (r->accept_cb == NULL || r->closing) {
            close(e->fd);
            break;
        }
        uv_stream_t *s = stream_over(r, e->fd);
        if (s == NULL) {
            close(e->fd);
            break;
        }
        r->accept_cb(&r->transport, e->id, e->address, s);
        break;
    }
    }
}

static void free_event(struct event *e) {
    free(e->address);
    raft_free(e->data);
    free(e);
}

static void on_raft_closed(struct raft *raft) {
    struct hako_raft *r = raft->data;
    raft_uv_close(&r->io);
    r->life = LIFE_CLOSED;
    close_handles(r);
}

static void on_wake(uv_async_t *a) {
    struct hako_raft *r = a->data;
    pthread_mutex_lock(&r->lock);
    struct event *list = r->head;
    r->head = r->tail = NULL;
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    while (list) {
        struct event *e = list;
        list = e->next;
        do_event(r, e);
        free_event(e);
    }
    if (stopping && !r->closing) {
        r->closing = 1;
        uv_timer_stop(&r->poll);
        uv_timer_stop(&r->restart);
        /* Closing for a restart: closed_for_restart closes the handles. */
        if (r->life == LIFE_OPEN) raft_close(&r->raft, on_raft_closed);
        else if (r->life == LIFE_CLOSED) close_handles(r);
    }
}

/* Reports role, leader and membership when they change. */
static void on_poll(uv_timer_t *t) {
    struct hako_raft *r = t->data;
    if (r->life != LIFE_OPEN) return;
    {
        const struct raft_log *l = &r->raft.log;
        size_t n = l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
        uint64_t bytes = 0;
        for (size_t i = 0; i < n; i++) bytes += l->entries[(l->front + i) % l->size].buf.len;
        __atomic_store_n(&r->log_bytes, bytes, __ATOMIC_RELAXED);
    }
    /* libraft 0.15 counts entries stored by adding those each write carried
     * (last_stored += n): entries it appended to its memory while installing
     * a snapshot, or whose write failed, are never counted, and a follower
     * then commits one entry per later write, or none if none comes. A
     * follower whose log holds entries past last_stored with no write under
     * way and no snapshot being taken or installed for a second is started
     * again from its disk, which the leader then completes. */
    if (raft_state(&r->raft) == RAFT_FOLLOWER && r->appends_in_flight == 0 && r->raft.snapshot.put.data == NULL
        && r->raft.snapshot.pending.term == 0 && r->raft.last_stored < raft_last_index(&r->raft)) {
        if (++r->stalled_polls == 50) {
            char m[256];
            snprintf(m, sizeof m, "entries %llu to %llu are in memory but not counted as written (libraft 0.15 after a snapshot install or a failed write): starting Raft again from its disk",
                     (unsigned long long)r->raft.last_stored + 1, (unsigned long long)raft_last_index(&r->raft));
            r->cb.log(r->cb.ctx, HAKO_RAFT_LOG_INFO, m);
            schedule_restart(r);
            return;
        }
    } else {
        r->stalled_polls = 0;
    }
    int state = raft_state(&r->raft);
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&r->raft, &leader, &address);
    if (state != r->last_state || leader != r->last_leader || r->raft.current_term != r->last_term) {
        r->last_state = state;
        r->last_leader = leader;
        r->last_term = r->raft.current_term;
        r->cb.changed(r->cb.ctx, state, leader, address ? address : "", r->raft.current_term);
    }
    raft_index ci = r->raft.configuration_uncommitted_index ? r->raft.configuration_uncommitted_index
                                                            : r->raft.configuration_index;
    if (ci != r->last_configuration && r->cb.members) {
        r->last_configuration = ci;
        unsigned n = r->raft.configuration.n;
        uint64_t ids[n ? n : 1];
        const char *addrs[n ? n : 1];
        int roles[n ? n : 1];
        for (unsigned i = 0; i < n; i++) {
            ids[i] = r->raft.configuration.servers[i].id;
            addrs[i] = r->raft.configuration.servers[i].address;
            roles[i] = r->raft.configuration.servers[i].role;
        }
        r->cb.members(r->cb.ctx, n, ids, addrs, roles);
    }
}

static int fail(struct hako_raft *r, int rc, const char *what, const char *detail) {
    snprintf(r->start_err, sizeof r->start_err, "%s: %s", what, detail);
    r->start_rc = rc ? rc : RAFT_INVALID;
    return r->start_rc;
}

/* libraft over the libuv backend in `dir`: the first time with the first
 * configuration (or --force-new-cluster's), again after a failed append
 * with what the disk holds. *opened: raft_init passed (raft_close undoes it). */
static int open_raft(struct hako_raft *r, int first, int *opened) {
    int rv;
    *opened = 0;
    if ((rv = raft_uv_init(&r->io, &r->loop, r->dir, &r->transport)) != 0) return fail(r, rv, "raft_uv_init", r->io.errmsg);
    r->uv_append = r->io.append;
    r->appends_in_flight = 0;
    r->io.append = wrapped_append;
    if ((rv = raft_init(&r->raft, &r->io, &r->fsm, r->opt.id, r->address)) != 0) {
        raft_uv_close(&r->io);
        return fail(r, rv, "raft_init", raft_strerror(rv));
    }
    *opened = 1;
    r->raft.data = r;
    raft_set_election_timeout(&r->raft, r->opt.election_timeout_ms);
    raft_set_heartbeat_timeout(&r->raft, r->opt.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&r->raft, r->opt.snapshot_threshold);
    raft_set_snapshot_trailing(&r->raft, r->opt.snapshot_trailing);
    raft_set_install_snapshot_timeout(&r->raft, install_timeout_ms(r->last_snapshot_bytes));
    raft_set_pre_vote(&r->raft, true);
    r->applied_bytes = 0;

    struct raft_configuration conf;
    raft_configuration_init(&conf);
    if (first && r->opt.force_single) {
        raft_configuration_add(&conf, r->opt.id, r->address, RAFT_VOTER);
        rv = raft_recover(&r->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) return fail(r, rv, "raft_recover", raft_errmsg(&r->raft));
    } else if (first && r->opt.n_bootstrap > 0) {
        for (unsigned i = 0; i < r->opt.n_bootstrap; i++) {
            rv = raft_configuration_add(&conf, r->opt.bootstrap_ids[i], r->opt.bootstrap_addresses[i], RAFT_VOTER);
            if (rv != 0) {
                raft_configuration_close(&conf);
                return fail(r, rv, "the first configuration", raft_strerror(rv));
            }
        }
        rv = raft_bootstrap(&r->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) return fail(r, rv, "raft_bootstrap", raft_errmsg(&r->raft));
    }
    if ((rv = raft_start(&r->raft)) != 0) return fail(r, rv, "raft_start", raft_errmsg(&r->raft));
    return 0;
}

static int setup(struct hako_raft *r) {
    int rv;
    if ((rv = uv_loop_init(&r->loop)) != 0) return fail(r, RAFT_IOERR, "uv_loop_init", uv_strerror(rv));
    r->wake.data = r;
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->poll.data = r;
    uv_timer_init(&r->loop, &r->poll);
    r->restart.data = r;
    uv_timer_init(&r->loop, &r->restart);

    /* libraft keeps its own pointer in `data`; ours goes in `impl`. */
    r->transport.impl = r;
    r->transport.init = tr_init;
    r->transport.listen = tr_listen;
    r->transport.connect = tr_connect;
    r->transport.close = tr_close;
    r->fsm.version = 1;
    r->fsm.data = r;
    r->fsm.apply = fsm_apply;
    r->fsm.snapshot = fsm_snapshot;
    r->fsm.restore = fsm_restore;
    int opened;
    if ((rv = open_raft(r, 1, &opened)) != 0) return rv;
    r->life = LIFE_OPEN;
    if (r->cb.started) r->cb.started(r->cb.ctx, raft_last_index(&r->raft));
    uv_timer_start(&r->poll, on_poll, 0, 20);
    return 0;
}

static void *run(void *arg) {
    struct hako_raft *r = arg;
    if (setup(r) != 0) {
        sem_post(&r->started);
        return NULL;
    }
    sem_post(&r->started);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    return NULL;
}

int hako_raft_start(const hako_raft_options *o, const hako_raft_callbacks *cb, hako_raft **out, char *err, size_t errlen) {
    struct hako_raft *r = calloc(1, sizeof *r);
    if (r == NULL) return RAFT_NOMEM;
    r->cb = *cb;
    r->opt = *o;
    r->address = strdup(o->address);
    r->dir = strdup(o->dir);
    r->last_state = -1;
    pthread_mutex_init(&r->lock, NULL);
    sem_init(&r->started, 0, 0);
    if (pthread_create(&r->thread, NULL, run, r) != 0) {
        snprintf(err, errlen, "cannot start the Raft thread: %s", strerror(errno));
        free(r->address);
        free(r->dir);
        free(r);
        return RAFT_NOMEM;
    }
    while (sem_wait(&r->started) != 0 && errno == EINTR) {}
    if (r->start_rc != 0) {
        int rc = r->start_rc;
        snprintf(err, errlen, "%s", r->start_err);
        pthread_join(r->thread, NULL);
        /* A failed setup leaves the loop with handles that were never run. */
        free(r->address);
        free(r->dir);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static void post(struct hako_raft *r, struct event *e) {
    pthread_mutex_lock(&r->lock);
    if (r->tail) r->tail->next = e;
    else r->head = e;
    r->tail = e;
    pthread_mutex_unlock(&r->lock);
    uv_async_send(&r->wake);
}

void hako_raft_propose(hako_raft *r, uint64_t token, const void *data, size_t len) {
    struct event *e = calloc(1, sizeof *e);
    void *copy = raft_malloc(len ? len : 1); /* handed to raft_apply as it is */
    if (e == NULL || copy == NULL) abort(); /* out of memory */
    memcpy(copy, data, len);
    e->kind = EV_PROPOSE;
    e->token = token;
    e->data = copy;
    e->len = len;
    post(r, e);
}

void hako_raft_change(hako_raft *r, uint64_t token, int kind, uint64_t id, const char *address) {
    struct event *e = calloc(1, sizeof *e);
    if (e == NULL) abort();
    e->kind = EV_CHANGE;
    e->token = token;
    e->change = kind;
    e->id = id;
    e->address = strdup(address ? address : "");
    post(r, e);
}

void hako_raft_connected(hako_raft *r, uint64_t handle, int fd) {
    struct event *e = calloc(1, sizeof *e);
    if (e == NULL) abort();
    e->kind = EV_CONNECTED;
    e->token = handle;
    e->fd = fd;
    post(r, e);
}

void hako_raft_accepted(hako_raft *r, uint64_t id, const char *address, int fd) {
    struct event *e = calloc(1, sizeof *e);
    if (e == NULL) abort();
    e->kind = EV_ACCEPTED;
    e->id = id;
    e->fd = fd;
    e->address = strdup(address);
    post(r, e);
}

uint64_t hako_raft_log_bytes(hako_raft *r) { return __atomic_load_n(&r->log_bytes, __ATOMIC_RELAXED); }

void hako_raft_stop(hako_raft *r) {
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_mutex_unlock(&r->lock);
    uv_async_send(&r->wake);
    pthread_join(r->thread, NULL);
    struct event *e = r->head;
    while (e) {
        struct event *n = e->next;
        if (e->fd > 0 && (e->kind == EV_CONNECTED || e->kind == EV_ACCEPTED)) close(e->fd);
        free_event(e);
        e = n;
    }
    pthread_mutex_destroy(&r->lock);
    sem_destroy(&r->started);
    free(r->address);
    free(r->dir);
    free(r);
}
