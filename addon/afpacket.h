// Linux AF_PACKET sockets that move frames between the kernel and netpd's arena.
//
// Why. The dispatcher works on arena slots; a live NIC has to land its frames there
// with as few copies and system calls as possible and never block the event loop.
// This layer does only that: open and configure a packet socket, and move bursts of
// frames between it and slots whose indices JavaScript chose (it allocates and frees
// slots through the WebAssembly core; nothing here touches the free list).
//
// Receive has two modes (README "Live capture" says which is the default and why):
//   ring  PACKET_RX_RING with TPACKET_V3: the kernel fills blocks of a memory-mapped
//         ring; a burst walks the frames of retired blocks and copies each into its slot.
//   mmsg  recvmmsg(MSG_DONTWAIT) with one iovec per slot: the kernel copies straight
//         into the slots; timestamps and VLAN tags come from control messages.
// Transmit also has two: sendmmsg with iovecs over the slots (no copy in user space),
// or a PACKET_TX_RING (TPACKET_V2) that the frames are copied into, flushed by one send().
//
// Both receive modes give what libpcap gives: the VLAN tag the NIC or veth stripped is
// put back in the frame, the wire length is the kernel's tp_len (plus the tag), the
// captured length is cut to the snap length, and timestamps are the kernel's, in ns.
//
// The "any" pseudo-interface is libpcap's cooked capture: a SOCK_DGRAM socket bound to
// every interface hands over network-layer packets with a sockaddr_ll, from which each
// slot gets a 16-byte LINUX_SLL header (packet type, ARPHRD type, address length and
// 8 address bytes, protocol) before the packet; a VLAN tag goes back in at offset 14,
// before the protocol field, as libpcap puts it. As in libpcap, an outgoing copy on the
// loopback device is dropped (the same packet comes in again) and the direction
// ('in', 'out') is applied per frame from sll_pkttype.
//
// Nothing here knows about N-API: binding.cc wraps it.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

namespace netpd {

// Where things are in the arena (from the core's layout table; see bindings/core.ts).
struct ArenaLayout {
  uint8_t* mem = nullptr;
  size_t memBytes = 0;
  uint32_t meta = 0, data = 0, slotSize = 0, slotCount = 0, metaSize = 0;
  uint32_t capLen = 0, wireLen = 0, tsNs = 0, ifIndex = 0, flowHash = 0, flags = 0;
  uint32_t truncatedCounter = 0;  // arena-relative address of the header's counter
};

enum class RxMode { Ring, Mmsg };
enum class TxMode { Mmsg, Ring };
enum class Direction { InOut, In, Out };

struct SocketOptions {
  std::string ifname;
  bool receive = true;
  bool promiscuous = true;
  uint32_t snaplen = 262144;
  RxMode rxMode = RxMode::Ring;
  TxMode txMode = TxMode::Mmsg;
  uint32_t ringBytes = 8u << 20;     // RX ring size (ring mode)
  uint32_t blockBytes = 1u << 20;    // TPACKET_V3 block size
  uint32_t blockTimeoutMs = 2;       // how long a partly filled block waits before it is handed over
  uint32_t rcvbufBytes = 8u << 20;   // socket receive buffer (mmsg mode)
  uint32_t burst = 256;              // largest burst receive/transmit is asked for
  uint32_t maxFrameBytes = 2048;     // largest frame sent (the arena's slot size): TX ring frame size
  bool ignoreOutgoing = false;       // PACKET_IGNORE_OUTGOING
  Direction direction = Direction::InOut;  // also checked per frame (libpcap's linux_check_direction)
  bool qdiscBypass = false;          // PACKET_QDISC_BYPASS on the transmit socket
  std::vector<sock_filter> filter;   // empty: no kernel filter
  bool hasFanout = false;
  uint16_t fanoutGroup = 0;
  uint16_t fanoutMode = 0;           // PACKET_FANOUT_HASH / _CPU / _LB
  uint16_t fanoutFlags = 0;          // PACKET_FANOUT_FLAG_DEFRAG, ...
};

// A failed system call: which one, and errno.
struct SysError {
  const char* what;
  int err;
};

struct KernelStats {
  uint64_t packets = 0;  // tp_packets: frames the socket accepted (after its filter)
  uint64_t drops = 0;    // tp_drops: of those, dropped because the ring or buffer was full
};

// What receive() put into slots so far (so JavaScript need not walk the metadata).
struct ReceiveTotals {
  uint64_t packets = 0;
  uint64_t wireBytes = 0;
  uint64_t skipped = 0;  // frames the direction rule or the loopback rule left out
};

class PacketSocket {
 public:
  // Opens and configures; on failure returns false and fills `error`.
  bool open(const SocketOptions& options, SysError& error);
  void close();
  ~PacketSocket() { close(); }

  int fd() const { return rxFd_; }
  int ifindex() const { return ifindex_; }
  bool cooked() const { return cooked_; }
  // Replaces the kernel filter (empty: none) in one SO_ATTACH_FILTER, which swaps it
  // atomically: every frame is judged by the old filter or the new, none by neither.
  bool setFilter(const std::vector<sock_filter>& filter, SysError& error);
  void attach(const ArenaLayout& arena) { arena_ = arena; }
  bool attached() const { return arena_.mem != nullptr; }

  // Fills the slots listed at vec[0..n) (u32 indices in the arena) with received
  // frames; returns how many were filled (0 when none are waiting), or -errno.
  int receive(uint32_t vec, uint32_t n);
  // Reads and throws away up to n waiting frames (the arena has no slot for them);
  // returns how many.
  int discard(uint32_t n);
  // Sends the frames in the slots vec[0..n); returns how many the kernel took, or -errno.
  int send(uint32_t vec, uint32_t n);
  // Adds the kernel's counters since the last call (PACKET_STATISTICS resets on read).
  bool stats(KernelStats& total, SysError& error);
  // The pending socket error (SO_ERROR, which clears it), 0 if none.
  int pendingError();
  const ReceiveTotals& received() const { return received_; }

 private:
  bool openCooked(SysError& error);
  bool setupRx(SysError& error);
  bool setupRxRing(SysError& error);
  bool setupTx(SysError& error);
  int receiveRing(uint32_t vec, uint32_t n, bool keep);
  int receiveMmsg(uint32_t vec, uint32_t n);
  int sendMmsg(uint32_t vec, uint32_t n);
  int sendRing(uint32_t vec, uint32_t n);
  int refusedByLink(const uint8_t* frame, uint32_t len, uint32_t mtu) const;
  bool validSlot(uint32_t slot) const { return slot < arena_.slotCount; }
  uint8_t* slotData(uint32_t slot) const { return arena_.mem + arena_.data + size_t(slot) * arena_.slotSize; }
  uint8_t* slotMeta(uint32_t slot) const { return arena_.mem + arena_.meta + size_t(slot) * arena_.metaSize; }
  uint32_t vecEntry(uint32_t vec, uint32_t i) const;
  void setMeta(uint32_t slot, uint32_t capLen, uint32_t wireLen, uint64_t tsNs, bool truncated, bool hasFlowHash,
               uint32_t flowHash, int ifindex);
  // Copies a frame into a slot, putting back a stripped VLAN tag; returns bytes kept.
  uint32_t copyFrame(uint8_t* dst, const uint8_t* frame, uint32_t len, bool vlan, uint16_t tpid, uint16_t tci, bool& truncated) const;
  // Cooked: the LINUX_SLL header from `sll`, then the packet; the same cuts and tag.
  uint32_t copyCooked(uint8_t* dst, const sockaddr_ll& sll, const uint8_t* packet, uint32_t len, bool vlan, uint16_t tpid,
                      uint16_t tci, bool& truncated) const;
  // False for a frame libpcap would not deliver: an outgoing loopback copy, or the wrong direction.
  bool wanted(const sockaddr_ll& sll) const;

  SocketOptions options_;
  ArenaLayout arena_;
  ReceiveTotals received_;
  int rxFd_ = -1;
  int txFd_ = -1;
  int ifindex_ = 0;
  int loIfindex_ = -1;
  bool cooked_ = false;
  std::vector<sockaddr_ll> names_;  // mmsg mode: each datagram's sender

  // RX ring (TPACKET_V3)
  uint8_t* rxMap_ = nullptr;
  size_t rxMapBytes_ = 0;
  uint32_t rxBlocks_ = 0;
  uint32_t rxBlock_ = 0;          // block being read
  uint32_t rxLeft_ = 0;           // frames left in it
  uint8_t* rxFrame_ = nullptr;    // next frame in it

  // recvmmsg / sendmmsg state, sized for one burst
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  std::vector<uint8_t> cmsgs_;
  size_t cmsgStride_ = 0;

  // TX ring (TPACKET_V2)
  uint8_t* txMap_ = nullptr;
  size_t txMapBytes_ = 0;
  uint32_t txFrames_ = 0;
  uint32_t txFrameBytes_ = 0;
  uint32_t txHead_ = 0;
  bool ethernet_ = true;           // ARPHRD_ETHER: one 802.1Q tag may pass the MTU by its 4 bytes
};

}  // namespace netpd
