// libnl-route-3 for Swift. Include paths come from pkg-config (libnl-route-3.0).
#ifndef CNETLINKROUTE_SHIM_H
#define CNETLINKROUTE_SHIM_H

#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/msg.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>

// nl_cache_foreach-style iteration without C callbacks: Swift walks the cache with
// nl_cache_get_first/nl_cache_get_next and casts with these (the casts are macros-free
// in C but Swift cannot convert between the opaque libnl types by itself).
static inline struct rtnl_link *ferry_nl_as_link(struct nl_object *o) { return (struct rtnl_link *)o; }
static inline struct rtnl_addr *ferry_nl_as_addr(struct nl_object *o) { return (struct rtnl_addr *)o; }
static inline struct rtnl_route *ferry_nl_as_route(struct nl_object *o) { return (struct rtnl_route *)o; }
static inline struct rtnl_neigh *ferry_nl_as_neigh(struct nl_object *o) { return (struct rtnl_neigh *)o; }

#endif
