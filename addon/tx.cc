// Transmit: frames from arena slots to the wire, in bursts, never blocking.
//
// Mmsg mode points one iovec at each slot and hands the burst to sendmmsg: the only
// copy is the kernel's. Ring mode copies each frame into the next free frame of a
// PACKET_TX_RING (TPACKET_V2), marks it TP_STATUS_SEND_REQUEST and flushes the ring
// with one send(); frames the kernel has not finished with stay owned by it, so a
// full ring shows up as a short count, like a full socket buffer does for sendmmsg.
//
// A short count is back-pressure, not an error: the caller keeps the slots it still
// holds and tries again when the loop comes round. A frame the link refuses outright
// (longer than the MTU allows, shorter than a link header) comes back as -EMSGSIZE or
// -EINVAL when it is first in the burst. sendmmsg gets that from the kernel; the ring
// runs with PACKET_LOSS, where the kernel skips such a frame without a word, so ring
// mode applies the kernel's own tests (tpacket_snd, dev_validate_header) before it
// queues a frame, against the MTU read once per burst so a change is seen.

#include "afpacket.h"

#include <linux/if_ether.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace netpd {

int PacketSocket::send(uint32_t vec, uint32_t n) {
  if (txFd_ < 0) return -EBADF;
  return options_.txMode == TxMode::Ring ? sendRing(vec, n) : sendMmsg(vec, n);
}

int PacketSocket::sendMmsg(uint32_t vec, uint32_t n) {
  if (n > msgs_.size()) n = uint32_t(msgs_.size());
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t slot = vecEntry(vec, i);
    if (!validSlot(slot)) return i == 0 ? -EINVAL : int(i);
    uint32_t len;
    std::memcpy(&len, slotMeta(slot) + arena_.capLen, 4);
    if (len > arena_.slotSize) len = arena_.slotSize;
    iovs_[i] = iovec{slotData(slot), len};
    msghdr& h = msgs_[i].msg_hdr;
    h = msghdr{};
    h.msg_iov = &iovs_[i];
    h.msg_iovlen = 1;
  }
  int sent = sendmmsg(txFd_, msgs_.data(), n, MSG_DONTWAIT);
  if (sent < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? 0 : -errno;
  return sent;
}

int PacketSocket::refusedByLink(const uint8_t* frame, uint32_t len, uint32_t mtu) const {
  if (len < ETH_HLEN) return EINVAL;
  if (len <= mtu + ETH_HLEN) return 0;
  const bool tagged = ethernet_ && frame[12] == 0x81 && frame[13] == 0x00;
  return tagged && len <= mtu + ETH_HLEN + 4 ? 0 : EMSGSIZE;
}

int PacketSocket::sendRing(uint32_t vec, uint32_t n) {
  const uint32_t room = txFrameBytes_ - TPACKET_ALIGN(sizeof(tpacket2_hdr));
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, options_.ifname.data(), options_.ifname.size());
  if (ioctl(txFd_, SIOCGIFMTU, &ifr) != 0) return -errno;
  const uint32_t mtu = uint32_t(ifr.ifr_mtu);
  uint32_t queued = 0;
  int refused = 0;
  for (; queued < n; queued++) {
    auto* h = reinterpret_cast<tpacket2_hdr*>(txMap_ + size_t(txHead_) * txFrameBytes_);
    uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    // With PACKET_LOSS set, the kernel skips a malformed frame; a WRONG_FORMAT left by
    // an older kernel is as free as an available one.
    if (status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT) break;
    const uint32_t slot = vecEntry(vec, queued);
    if (!validSlot(slot)) break;
    uint32_t len;
    std::memcpy(&len, slotMeta(slot) + arena_.capLen, 4);
    if (len > arena_.slotSize) len = arena_.slotSize;
    refused = len > room ? EMSGSIZE : refusedByLink(slotData(slot), len, mtu);
    if (refused != 0) break;
    std::memcpy(reinterpret_cast<uint8_t*>(h) + TPACKET_ALIGN(sizeof(tpacket2_hdr)), slotData(slot), len);
    h->tp_len = len;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    txHead_ = (txHead_ + 1) % txFrames_;
  }
  // Flush even when nothing new was queued: frames left from a refused flush go now.
  if (::send(txFd_, nullptr, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS && queued == 0) return -errno;
  return queued == 0 && refused != 0 ? -refused : int(queued);
}

}  // namespace netpd
