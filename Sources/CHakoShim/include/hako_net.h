// Network namespace helpers for the engine (not used between clone and exec).
#ifndef HAKO_NET_H
#define HAKO_NET_H

#ifdef __cplusplus
extern "C" {
#endif

// Creates a new network namespace, pins it by bind-mounting it onto `path`
// (an existing empty file), and creates a socket (domain, type, protocol)
// inside it, on the same thread: the one its configuration goes through. The
// namespace is made on a short-lived thread, so the caller's own thread never
// changes namespace. Returns the socket's fd, or -errno (and nothing pinned).
int hako_netns_create(const char *path, int domain, int type, int protocol);

// A socket created inside the network namespace `nsfd` (again from a
// short-lived thread): it stays bound to that namespace. Returns the fd or -errno.
int hako_socket_in_netns(int nsfd, int domain, int type, int protocol);

#ifdef __cplusplus
}
#endif
#endif
