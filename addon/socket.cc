// Opening, configuring and closing the packet sockets, and their statistics.
//
// Order matters on open: the receive socket is created with protocol 0, so it sees no
// frame until bind(); the ring, the kernel filter and the options are all set before
// bind, so no frame reaches user space unfiltered (libpcap does the same). Fanout is
// joined after bind, as the kernel requires. Transmit uses a second socket bound with
// protocol 0: it never receives, so it never competes for frames with the receive one.

#include "afpacket.h"

#include <cerrno>
#include <cstring>
#include <linux/if_ether.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace netpd {

namespace {

bool fail(SysError& error, const char* what, int err) {
  error.what = what;
  error.err = err;
  return false;
}

template <typename T>
bool setOption(int fd, int level, int name, const T& value, const char* what, SysError& error) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) return fail(error, what, errno);
  return true;
}

bool bindTo(int fd, int ifindex, uint16_t protocol, SysError& error) {
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(protocol);
  sll.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) return fail(error, "bind", errno);
  return true;
}

}  // namespace

bool PacketSocket::open(const SocketOptions& options, SysError& error) {
  options_ = options;
  if (options.ifname.empty() || options.ifname.size() >= IFNAMSIZ) return fail(error, "if_nametoindex", ENODEV);
  cooked_ = options.ifname == "any";
  loIfindex_ = int(if_nametoindex("lo"));
  rxFd_ = socket(AF_PACKET, (cooked_ ? SOCK_DGRAM : SOCK_RAW) | SOCK_CLOEXEC, 0);
  if (rxFd_ < 0) return fail(error, "socket(AF_PACKET)", errno);
  if (cooked_) return openCooked(error);

  ifreq ifr{};
  std::memcpy(ifr.ifr_name, options.ifname.data(), options.ifname.size());
  if (ioctl(rxFd_, SIOCGIFINDEX, &ifr) != 0) return fail(error, "SIOCGIFINDEX", errno == ENODEV ? ENODEV : errno);
  ifindex_ = ifr.ifr_ifindex;
  if (ioctl(rxFd_, SIOCGIFHWADDR, &ifr) != 0) return fail(error, "SIOCGIFHWADDR", errno);
  // Frames are handed on as Ethernet (DLT_EN10MB); loopback frames carry a zeroed one.
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER && ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK) {
    return fail(error, "SIOCGIFHWADDR (link type is not Ethernet)", EAFNOSUPPORT);
  }
  ethernet_ = ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
  if (ioctl(rxFd_, SIOCGIFFLAGS, &ifr) != 0) return fail(error, "SIOCGIFFLAGS", errno);
  if (!(ifr.ifr_flags & IFF_UP)) return fail(error, "SIOCGIFFLAGS (interface is down)", ENETDOWN);

  if (!setupRx(error)) return false;
  if (options.receive && options.promiscuous) {
    packet_mreq mr{};
    mr.mr_ifindex = ifindex_;
    mr.mr_type = PACKET_MR_PROMISC;
    if (!setOption(rxFd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mr, "PACKET_ADD_MEMBERSHIP", error)) return false;
  }
  return setupTx(error);
}

// "any": every interface, cooked; no promiscuous mode and no transmit (libpcap has neither there).
bool PacketSocket::openCooked(SysError& error) {
  ifindex_ = 0;
  if (!options_.receive) return fail(error, "bind (the any device cannot transmit)", EINVAL);
  return setupRx(error);
}

// The ring, the kernel filter and the options, then bind and fanout (see the order above).
bool PacketSocket::setupRx(SysError& error) {
  const SocketOptions& options = options_;
  if (options.receive) {
    if (options.rxMode == RxMode::Ring) {
      if (!setupRxRing(error)) return false;
    } else {
      int on = 1;
      if (!setOption(rxFd_, SOL_PACKET, PACKET_AUXDATA, on, "PACKET_AUXDATA", error)) return false;
      if (!setOption(rxFd_, SOL_SOCKET, SO_TIMESTAMPNS, on, "SO_TIMESTAMPNS", error)) return false;
      int bytes = static_cast<int>(options.rcvbufBytes);
      // SO_RCVBUFFORCE passes net.core.rmem_max when we have CAP_NET_ADMIN; else take what is allowed.
      if (setsockopt(rxFd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0 &&
          !setOption(rxFd_, SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF", error)) {
        return false;
      }
      const size_t n = options.burst;
      msgs_.assign(n, mmsghdr{});
      iovs_.assign(n, iovec{});
      cmsgStride_ = CMSG_SPACE(sizeof(tpacket_auxdata)) + CMSG_SPACE(sizeof(timespec)) + 64;
      cmsgs_.assign(n * cmsgStride_, 0);
      names_.assign(n, sockaddr_ll{});
    }
    if (!options.filter.empty() && !setFilter(options.filter, error)) return false;
    if (options.ignoreOutgoing) {
      int on = 1;
      if (!setOption(rxFd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, on, "PACKET_IGNORE_OUTGOING", error)) return false;
    }
    if (!bindTo(rxFd_, ifindex_, ETH_P_ALL, error)) return false;
    if (options.hasFanout) {
      uint32_t arg = options.fanoutGroup | (uint32_t(options.fanoutMode | options.fanoutFlags) << 16);
      if (!setOption(rxFd_, SOL_PACKET, PACKET_FANOUT, arg, "PACKET_FANOUT", error)) return false;
    }
  }
  return true;
}

bool PacketSocket::setFilter(const std::vector<sock_filter>& filter, SysError& error) {
  if (rxFd_ < 0) return fail(error, "SO_ATTACH_FILTER", EBADF);
  if (filter.empty()) {
    // No filter: detaching one that is not there (ENOENT) is fine.
    int dummy = 0;
    if (setsockopt(rxFd_, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) != 0 && errno != ENOENT) {
      return fail(error, "SO_DETACH_FILTER", errno);
    }
    return true;
  }
  sock_fprog prog{static_cast<unsigned short>(filter.size()), const_cast<sock_filter*>(filter.data())};
  return setOption(rxFd_, SOL_SOCKET, SO_ATTACH_FILTER, prog, "SO_ATTACH_FILTER", error);
}

bool PacketSocket::setupRxRing(SysError& error) {
  int version = TPACKET_V3;
  if (!setOption(rxFd_, SOL_PACKET, PACKET_VERSION, version, "PACKET_VERSION", error)) return false;
  const long page = sysconf(_SC_PAGESIZE);
  uint32_t block = options_.blockBytes;
  if (block < uint32_t(page) || block % page != 0) return fail(error, "PACKET_RX_RING (block size is not a multiple of the page size)", EINVAL);
  uint32_t blocks = options_.ringBytes / block;
  if (blocks < 2) blocks = 2;
  tpacket_req3 req{};
  req.tp_block_size = block;
  req.tp_block_nr = blocks;
  req.tp_frame_size = TPACKET_ALIGNMENT << 7;  // V3 packs frames; this only sets tp_frame_nr
  req.tp_frame_nr = (block / req.tp_frame_size) * blocks;
  req.tp_retire_blk_tov = options_.blockTimeoutMs;
  req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
  if (!setOption(rxFd_, SOL_PACKET, PACKET_RX_RING, req, "PACKET_RX_RING", error)) return false;
  rxMapBytes_ = size_t(block) * blocks;
  void* map = mmap(nullptr, rxMapBytes_, PROT_READ | PROT_WRITE, MAP_SHARED, rxFd_, 0);
  if (map == MAP_FAILED) {
    rxMapBytes_ = 0;
    return fail(error, "mmap(PACKET_RX_RING)", errno);
  }
  rxMap_ = static_cast<uint8_t*>(map);
  rxBlocks_ = blocks;
  return true;
}

bool PacketSocket::setupTx(SysError& error) {
  txFd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (txFd_ < 0) return fail(error, "socket(AF_PACKET)", errno);
  if (options_.qdiscBypass) {
    int on = 1;
    if (!setOption(txFd_, SOL_PACKET, PACKET_QDISC_BYPASS, on, "PACKET_QDISC_BYPASS", error)) return false;
  }
  if (options_.txMode == TxMode::Ring) {
    int version = TPACKET_V2, loss = 1;
    if (!setOption(txFd_, SOL_PACKET, PACKET_VERSION, version, "PACKET_VERSION", error)) return false;
    if (!setOption(txFd_, SOL_PACKET, PACKET_LOSS, loss, "PACKET_LOSS", error)) return false;
    // Frames hold the header and a full slot; a block holds a whole number of frames.
    uint32_t frame = TPACKET_ALIGN(TPACKET2_HDRLEN) + 64;
    while (frame < TPACKET_ALIGN(TPACKET2_HDRLEN) + options_.maxFrameBytes) frame <<= 1;
    const long page = sysconf(_SC_PAGESIZE);
    uint32_t block = frame > uint32_t(page) ? frame : uint32_t(page) * 16;
    tpacket_req req{};
    req.tp_block_size = block;
    req.tp_frame_size = frame;
    req.tp_block_nr = (4u << 20) / block;
    if (req.tp_block_nr == 0) req.tp_block_nr = 1;
    req.tp_frame_nr = (block / frame) * req.tp_block_nr;
    if (!setOption(txFd_, SOL_PACKET, PACKET_TX_RING, req, "PACKET_TX_RING", error)) return false;
    txMapBytes_ = size_t(block) * req.tp_block_nr;
    void* map = mmap(nullptr, txMapBytes_, PROT_READ | PROT_WRITE, MAP_SHARED, txFd_, 0);
    if (map == MAP_FAILED) {
      txMapBytes_ = 0;
      return fail(error, "mmap(PACKET_TX_RING)", errno);
    }
    txMap_ = static_cast<uint8_t*>(map);
    txFrames_ = req.tp_frame_nr;
    txFrameBytes_ = frame;
  } else if (msgs_.empty()) {
    msgs_.assign(options_.burst, mmsghdr{});
    iovs_.assign(options_.burst, iovec{});
  }
  return bindTo(txFd_, ifindex_, 0, error);
}

void PacketSocket::close() {
  if (rxMap_) munmap(rxMap_, rxMapBytes_);
  if (txMap_) munmap(txMap_, txMapBytes_);
  rxMap_ = txMap_ = nullptr;
  if (rxFd_ >= 0) ::close(rxFd_);
  if (txFd_ >= 0) ::close(txFd_);
  rxFd_ = txFd_ = -1;
}

bool PacketSocket::stats(KernelStats& total, SysError& error) {
  if (rxFd_ < 0 || !options_.receive) return true;
  tpacket_stats_v3 st{};
  socklen_t len = options_.rxMode == RxMode::Ring ? sizeof(tpacket_stats_v3) : sizeof(tpacket_stats);
  if (getsockopt(rxFd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return fail(error, "PACKET_STATISTICS", errno);
  total.packets += st.tp_packets;  // the kernel already counts drops in tp_packets
  total.drops += st.tp_drops;
  return true;
}

int PacketSocket::pendingError() {
  int err = 0;
  socklen_t len = sizeof err;
  if (rxFd_ < 0) return EBADF;
  if (getsockopt(rxFd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

}  // namespace netpd
