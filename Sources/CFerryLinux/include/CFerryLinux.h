// C shims for FerryLinux: kernel ABI headers Swift imports directly, plus tiny wrappers
// for what Swift cannot import (function-like macros, _GNU_SOURCE-only declarations,
// and acquire/release accesses to ring status words shared with the kernel).
#ifndef CFERRYLINUX_H
#define CFERRYLINUX_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/inotify.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/netlink.h>

// MARK: Ring status words
//
// The kernel publishes a frame or block with smp_wmb() after filling it and reads the
// status with smp_rmb() before looking at the contents (net/packet/af_packet.c,
// __packet_set_status / __packet_get_status). Userspace pairs with that using an
// acquire load before reading a frame and a release store when handing it back.

static inline uint32_t ferry_ring_load_status(const void *word) {
    return __atomic_load_n((const uint32_t *)word, __ATOMIC_ACQUIRE);
}

static inline void ferry_ring_store_status(void *word, uint32_t value) {
    __atomic_store_n((uint32_t *)word, value, __ATOMIC_RELEASE);
}

// MARK: Layout constants (function-like macros in if_packet.h)

static inline size_t ferry_tpacket_align(size_t x) { return TPACKET_ALIGN(x); }

/// Offset of the frame data in a TPACKET_V2 TX slot: tpacket_parse_header() uses
/// po->tp_hdrlen - sizeof(struct sockaddr_ll) = TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).
static inline size_t ferry_tpacket2_tx_data_offset(void) {
    return TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
}

static inline size_t ferry_tpacket2_hdrlen(void) { return TPACKET2_HDRLEN; }
static inline size_t ferry_tpacket3_hdrlen(void) { return TPACKET3_HDRLEN; }

// MARK: Declarations that need _GNU_SOURCE (defined in shims.c)

/// setns(2) on the calling thread.
int ferry_setns(int fd, int nstype);
/// The CLONE_NEWNET flag for setns(2).
int ferry_clone_newnet(void);
/// The process environment, for posix_spawn.
char *const *ferry_environ(void);
/// pipe2(2).
int ferry_pipe2(int fds[2], int flags);
/// Thread id of the caller (gettid(2)), for diagnostics.
pid_t ferry_gettid(void);

#endif
