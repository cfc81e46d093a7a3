// libmnl and the kernel's rtnetlink definitions (links, addresses, routes,
// neighbours, bridge FDB, veth/bridge/vxlan link info).
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <linux/if_arp.h>
#include <linux/if.h>

// Constants Swift cannot see through the macros that define them.
static const unsigned int HAKO_NLMSG_HDRLEN = NLMSG_HDRLEN;
static const unsigned int HAKO_MNL_SOCKET_BUFFER_SIZE = 8192;
static const int HAKO_NUD_PERMANENT = NUD_PERMANENT;
static const int HAKO_NTF_SELF = NTF_SELF;
static const int HAKO_NTF_MASTER = NTF_MASTER;
static const int HAKO_IFF_UP = IFF_UP;
static const int HAKO_IFNAMSIZ = IFNAMSIZ;
