// Receive: frames from the kernel into arena slots, in bursts, never blocking.
//
// Ring mode walks TPACKET_V3 blocks. A block belongs to us while its status has
// TP_STATUS_USER; we copy its frames into slots and hand it back (TP_STATUS_KERNEL,
// with a release store so the kernel never sees the block before we are done reading).
// A burst may stop in the middle of a block; the cursor (block, frame, frames left)
// carries over to the next call.
//
// Mmsg mode asks recvmmsg for up to n datagrams with MSG_DONTWAIT (without it, the
// call would wait for the whole batch), each into its own slot.
//
// Both put back a VLAN tag the kernel took out of the frame (TP_STATUS_VLAN_VALID, or
// a nonzero TCI, as libpcap tests), so netpd sees the bytes that were on the wire.
// Both read each frame's sockaddr_ll: its interface index goes into the slot (the "any"
// device sees many), its packet type decides the direction rule and, in cooked mode,
// fills the LINUX_SLL header. A frame the rule leaves out takes no slot.

#include "afpacket.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <linux/if_ether.h>
#include <arpa/inet.h>

namespace netpd {

namespace {

constexpr uint32_t kMacBytes = 12;  // destination + source MAC
constexpr uint32_t kTagBytes = 4;   // TPID + TCI
constexpr uint32_t kSllBytes = 16;  // LINUX_SLL header
constexpr uint32_t kSllProtocol = 14;  // where its protocol field (and an inserted VLAN tag) goes
constexpr uint32_t kSlotTruncated = 1;
constexpr uint32_t kSlotHasFlowHash = 2;

inline void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

bool vlanPresent(uint32_t status, uint16_t tci) { return tci != 0 || (status & TP_STATUS_VLAN_VALID); }

}  // namespace

uint32_t PacketSocket::vecEntry(uint32_t vec, uint32_t i) const {
  uint32_t slot;
  std::memcpy(&slot, arena_.mem + vec + size_t(i) * 4, 4);
  return slot;
}

void PacketSocket::setMeta(uint32_t slot, uint32_t capLen, uint32_t wireLen, uint64_t tsNs, bool truncated,
                           bool hasFlowHash, uint32_t flowHash, int ifindex) {
  uint8_t* m = slotMeta(slot);
  put32(m + arena_.capLen, capLen);
  put32(m + arena_.wireLen, wireLen);
  put64(m + arena_.tsNs, tsNs);
  put32(m + arena_.ifIndex, uint32_t(ifindex));
  put32(m + arena_.flowHash, flowHash);
  put32(m + arena_.flags, (truncated ? kSlotTruncated : 0) | (hasFlowHash ? kSlotHasFlowHash : 0));
  received_.packets++;
  received_.wireBytes += wireLen;
  if (truncated) __atomic_fetch_add(reinterpret_cast<uint32_t*>(arena_.mem + arena_.truncatedCounter), 1, __ATOMIC_RELAXED);
}

uint32_t PacketSocket::copyFrame(uint8_t* dst, const uint8_t* frame, uint32_t len, bool vlan, uint16_t tpid,
                                 uint16_t tci, bool& truncated) const {
  // len is what the kernel captured; keep at most snaplen of the frame as it was on the
  // wire (tag included), and at most a slot of that.
  uint32_t wanted = len + (vlan && len >= kMacBytes ? kTagBytes : 0);
  if (wanted > options_.snaplen) wanted = options_.snaplen;
  truncated = wanted > arena_.slotSize;
  const uint32_t keep = truncated ? arena_.slotSize : wanted;
  if (!vlan || len < kMacBytes) {
    std::memcpy(dst, frame, keep);
    return keep;
  }
  const uint8_t tag[kTagBytes] = {uint8_t(tpid >> 8), uint8_t(tpid), uint8_t(tci >> 8), uint8_t(tci)};
  uint32_t mac = keep < kMacBytes ? keep : kMacBytes;
  std::memcpy(dst, frame, mac);
  if (keep > kMacBytes) {
    uint32_t t = keep - kMacBytes < kTagBytes ? keep - kMacBytes : kTagBytes;
    std::memcpy(dst + kMacBytes, tag, t);
    if (keep > kMacBytes + kTagBytes) std::memcpy(dst + kMacBytes + kTagBytes, frame + kMacBytes, keep - kMacBytes - kTagBytes);
  }
  return keep;
}

bool PacketSocket::wanted(const sockaddr_ll& sll) const {
  if (sll.sll_pkttype == PACKET_OUTGOING) {
    // The loopback device hands every packet in again: keep that copy only.
    if (sll.sll_ifindex == loIfindex_) return false;
    return options_.direction != Direction::In;
  }
  return options_.direction != Direction::Out;
}

uint32_t PacketSocket::copyCooked(uint8_t* dst, const sockaddr_ll& sll, const uint8_t* packet, uint32_t len, bool vlan,
                                  uint16_t tpid, uint16_t tci, bool& truncated) const {
  uint8_t hdr[kSllBytes + kTagBytes];
  const uint16_t head[3] = {htons(sll.sll_pkttype), htons(sll.sll_hatype), htons(sll.sll_halen)};
  std::memcpy(hdr, head, 6);
  std::memset(hdr + 6, 0, 8);
  std::memcpy(hdr + 6, sll.sll_addr, sll.sll_halen < 8 ? sll.sll_halen : 8);
  uint32_t hdrLen = kSllBytes;
  if (vlan) {
    const uint8_t tag[kTagBytes] = {uint8_t(tpid >> 8), uint8_t(tpid), uint8_t(tci >> 8), uint8_t(tci)};
    std::memcpy(hdr + kSllProtocol, tag, kTagBytes);
    hdrLen += kTagBytes;
  }
  std::memcpy(hdr + hdrLen - 2, &sll.sll_protocol, 2);
  uint32_t wantedLen = hdrLen + len;
  if (wantedLen > options_.snaplen) wantedLen = options_.snaplen;
  truncated = wantedLen > arena_.slotSize;
  const uint32_t keep = truncated ? arena_.slotSize : wantedLen;
  // The packet may already be in the slot (mmsg): move it before the header covers its start.
  if (keep > hdrLen && dst + hdrLen != packet) std::memmove(dst + hdrLen, packet, keep - hdrLen);
  std::memcpy(dst, hdr, keep < hdrLen ? keep : hdrLen);
  return keep;
}

int PacketSocket::receive(uint32_t vec, uint32_t n) {
  if (!options_.receive || rxFd_ < 0) return -EBADF;
  if (n > options_.burst && options_.rxMode == RxMode::Mmsg) n = options_.burst;
  return options_.rxMode == RxMode::Ring ? receiveRing(vec, n, true) : receiveMmsg(vec, n);
}

int PacketSocket::discard(uint32_t n) {
  if (!options_.receive || rxFd_ < 0) return -EBADF;
  if (options_.rxMode == RxMode::Ring) return receiveRing(0, n, false);
  // A zero-length iovec still takes the whole datagram off the queue.
  if (n > options_.burst) n = options_.burst;
  for (uint32_t i = 0; i < n; i++) {
    iovs_[i] = iovec{nullptr, 0};
    msgs_[i].msg_hdr = msghdr{};
    msgs_[i].msg_hdr.msg_iov = &iovs_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  int got = recvmmsg(rxFd_, msgs_.data(), n, MSG_DONTWAIT | MSG_TRUNC, nullptr);
  if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  return got;
}

int PacketSocket::receiveRing(uint32_t vec, uint32_t n, bool keep) {
  const uint32_t blockBytes = options_.blockBytes;
  uint32_t filled = 0;
  while (filled < n) {
    auto* block = reinterpret_cast<tpacket_block_desc*>(rxMap_ + size_t(rxBlock_) * blockBytes);
    if (rxFrame_ == nullptr) {
      if (!(__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      rxLeft_ = block->hdr.bh1.num_pkts;
      rxFrame_ = reinterpret_cast<uint8_t*>(block) + block->hdr.bh1.offset_to_first_pkt;
    }
    if (rxLeft_ > 0) {
      auto* h = reinterpret_cast<tpacket3_hdr*>(rxFrame_);
      const auto& sll = *reinterpret_cast<const sockaddr_ll*>(rxFrame_ + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
      const bool take = wanted(sll);
      if (!take) received_.skipped++;
      // The kernel wrote the block on another CPU: ask for the next frame's header and
      // first bytes while this one is copied, so the two cache misses overlap.
      if (rxLeft_ > 1) {
        const uint8_t* next = rxFrame_ + h->tp_next_offset;
        __builtin_prefetch(next);
        __builtin_prefetch(next + 64);
      }
      if (keep && take) {
        const uint32_t slot = vecEntry(vec, filled);
        if (!validSlot(slot)) return -EINVAL;
        const bool vlan = vlanPresent(h->tp_status, h->hv1.tp_vlan_tci);
        const uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : ETH_P_8021Q;
        bool truncated = false;
        uint32_t cap, wire;
        if (cooked_) {
          cap = copyCooked(slotData(slot), sll, rxFrame_ + h->tp_mac, h->tp_snaplen, vlan, tpid, h->hv1.tp_vlan_tci, truncated);
          wire = kSllBytes + h->tp_len + (vlan ? kTagBytes : 0);
        } else {
          cap = copyFrame(slotData(slot), rxFrame_ + h->tp_mac, h->tp_snaplen, vlan, tpid, h->hv1.tp_vlan_tci, truncated);
          wire = h->tp_len + (vlan && h->tp_snaplen >= 12 ? kTagBytes : 0);
        }
        // The kernel's flow hash (skb_get_hash) comes free with the frame: keep it for FLOW ordering.
        setMeta(slot, cap, wire, uint64_t(h->tp_sec) * 1000000000u + h->tp_nsec, truncated, true, h->hv1.tp_rxhash,
                sll.sll_ifindex);
      }
      if (take || !keep) filled++;
      rxLeft_--;
      rxFrame_ += h->tp_next_offset;
    }
    if (rxLeft_ == 0) {
      __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      rxFrame_ = nullptr;
      rxBlock_ = (rxBlock_ + 1) % rxBlocks_;
    }
  }
  return int(filled);
}

int PacketSocket::receiveMmsg(uint32_t vec, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t slot = vecEntry(vec, i);
    if (!validSlot(slot)) return -EINVAL;
    uint32_t room = options_.snaplen < arena_.slotSize ? options_.snaplen : arena_.slotSize;
    // Cooked: the packet lands after the room for its LINUX_SLL header.
    const uint32_t skip = cooked_ ? (room < kSllBytes ? room : kSllBytes) : 0;
    iovs_[i] = iovec{slotData(slot) + skip, room - skip};
    msghdr& h = msgs_[i].msg_hdr;
    h = msghdr{};
    h.msg_name = &names_[i];
    h.msg_namelen = sizeof(sockaddr_ll);
    h.msg_iov = &iovs_[i];
    h.msg_iovlen = 1;
    h.msg_control = cmsgs_.data() + i * cmsgStride_;
    h.msg_controllen = cmsgStride_;
  }
  int got = recvmmsg(rxFd_, msgs_.data(), n, MSG_DONTWAIT, nullptr);
  if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  int filled = 0;
  for (int i = 0; i < got; i++) {
    msghdr& h = msgs_[i].msg_hdr;
    const sockaddr_ll& sll = names_[i];
    if (!wanted(sll)) {
      received_.skipped++;
      continue;
    }
    tpacket_auxdata aux{};
    timespec ts{};
    bool haveAux = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
        std::memcpy(&aux, CMSG_DATA(c), sizeof aux);
        haveAux = true;
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      }
    }
    // Frames left out leave their slots behind: move this one's slot up to the next place.
    const uint32_t slot = vecEntry(vec, uint32_t(i));
    if (filled != i) {
      const uint32_t other = vecEntry(vec, uint32_t(filled));
      std::memcpy(arena_.mem + vec + size_t(filled) * 4, &slot, 4);
      std::memcpy(arena_.mem + vec + size_t(i) * 4, &other, 4);
    }
    filled++;
    uint8_t* data = slotData(slot);
    const uint32_t room = uint32_t(iovs_[i].iov_len);
    uint32_t cap = msgs_[i].msg_len < room ? msgs_[i].msg_len : room;
    uint32_t wire = haveAux ? aux.tp_len : msgs_[i].msg_len;
    const uint64_t tsNs = uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
    if (cooked_) {
      const bool vlan = haveAux && vlanPresent(aux.tp_status, aux.tp_vlan_tci);
      const uint16_t tpid = vlan && (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
      bool truncated = false;
      cap = copyCooked(data, sll, static_cast<uint8_t*>(iovs_[i].iov_base), cap, vlan, tpid, aux.tp_vlan_tci, truncated);
      wire += kSllBytes + (vlan ? kTagBytes : 0);
      setMeta(slot, cap, wire, tsNs, truncated, false, 0, sll.sll_ifindex);
      continue;
    }
    if (haveAux && vlanPresent(aux.tp_status, aux.tp_vlan_tci) && cap >= kMacBytes) {
      const uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
      const uint32_t keep = cap + kTagBytes <= room ? cap + kTagBytes : room;
      if (keep > kMacBytes + kTagBytes) std::memmove(data + kMacBytes + kTagBytes, data + kMacBytes, keep - kMacBytes - kTagBytes);
      const uint8_t tag[kTagBytes] = {uint8_t(tpid >> 8), uint8_t(tpid), uint8_t(aux.tp_vlan_tci >> 8), uint8_t(aux.tp_vlan_tci)};
      std::memcpy(data + kMacBytes, tag, keep - kMacBytes < kTagBytes ? keep - kMacBytes : kTagBytes);
      wire += kTagBytes;
      cap = keep;
    }
    // Cut to the slot (not just to the snap length): flagged and counted, as in the file readers.
    const uint32_t wanted = wire < options_.snaplen ? wire : options_.snaplen;
    const bool truncated = wanted > arena_.slotSize;
    setMeta(slot, cap, wire, tsNs, truncated, false, 0, sll.sll_ifindex);
  }
  return filled;
}

}  // namespace netpd
