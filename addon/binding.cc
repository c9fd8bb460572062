// The N-API face of the packet sockets (node-addon-api, so one build serves every
// Node version with N-API 8).
//
// JavaScript calls in once per burst (receive/send/discard), never per packet, and
// passes the address of a slot vector inside the arena instead of an array. The arena
// is a Uint8Array over the shared WebAssembly.Memory; its data pointer is taken once
// (napi_get_typedarray_info works on shared memory where the ArrayBuffer route does
// not) and stays valid because the arena never grows; we hold a reference to the
// array so the memory outlives the socket.
//
// Readiness comes from a libuv poll handle on the receive socket, so the event loop
// never blocks: each wake-up calls back into JavaScript, which drains a burst budget.
// The handle is closed on close(), on finalization, and at environment teardown
// (worker threads), whichever comes first.

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>

#include "afpacket.h"

namespace {

using netpd::PacketSocket;

std::string errnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

Napi::Error sysError(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, errnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

uint32_t u32(const Napi::Object& o, const char* key, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : fallback;
}

bool flag(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

// A kernel filter from four u32 per instruction (code, jt, jf, k; validated by the
// bindings first); anything but a Uint32Array is no filter.
std::vector<sock_filter> program(Napi::Value value) {
  std::vector<sock_filter> filter;
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) return filter;
  Napi::Uint32Array words = value.As<Napi::Uint32Array>();
  for (size_t i = 0; i + 3 < words.ElementLength(); i += 4) {
    filter.push_back(sock_filter{uint16_t(words[i]), uint8_t(words[i + 1]), uint8_t(words[i + 2]), words[i + 3]});
  }
  return filter;
}

class SocketWrap : public Napi::ObjectWrap<SocketWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PacketSocket",
                       {
                           InstanceMethod<&SocketWrap::Attach>("attach"),
                           InstanceMethod<&SocketWrap::Receive>("receive"),
                           InstanceMethod<&SocketWrap::Discard>("discard"),
                           InstanceMethod<&SocketWrap::Send>("send"),
                           InstanceMethod<&SocketWrap::Stats>("stats"),
                           InstanceMethod<&SocketWrap::PendingError>("pendingError"),
                           InstanceMethod<&SocketWrap::Poll>("poll"),
                           InstanceMethod<&SocketWrap::Pause>("pause"),
                           InstanceMethod<&SocketWrap::SetFilter>("setFilter"),
                           InstanceMethod<&SocketWrap::Close>("close"),
                           InstanceAccessor<&SocketWrap::IfIndex>("ifindex"),
                       });
  }

  explicit SocketWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SocketWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "PacketSocket(options): options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    netpd::SocketOptions opt;
    opt.ifname = o.Get("ifname").ToString().Utf8Value();
    opt.receive = flag(o, "receive", opt.receive);
    opt.promiscuous = flag(o, "promiscuous", opt.promiscuous);
    opt.snaplen = u32(o, "snaplen", opt.snaplen);
    opt.rxMode = o.Get("rxMode").ToString().Utf8Value() == "mmsg" ? netpd::RxMode::Mmsg : netpd::RxMode::Ring;
    opt.txMode = o.Get("txMode").ToString().Utf8Value() == "ring" ? netpd::TxMode::Ring : netpd::TxMode::Mmsg;
    opt.ringBytes = u32(o, "ringBytes", opt.ringBytes);
    opt.blockBytes = u32(o, "blockBytes", opt.blockBytes);
    opt.blockTimeoutMs = u32(o, "blockTimeoutMs", opt.blockTimeoutMs);
    opt.rcvbufBytes = u32(o, "rcvbufBytes", opt.rcvbufBytes);
    opt.burst = u32(o, "burst", opt.burst);
    opt.maxFrameBytes = u32(o, "maxFrameBytes", opt.maxFrameBytes);
    opt.ignoreOutgoing = flag(o, "ignoreOutgoing", opt.ignoreOutgoing);
    opt.qdiscBypass = flag(o, "qdiscBypass", opt.qdiscBypass);
    const std::string direction = o.Get("direction").IsString() ? o.Get("direction").ToString().Utf8Value() : "inout";
    opt.direction = direction == "in" ? netpd::Direction::In : direction == "out" ? netpd::Direction::Out : netpd::Direction::InOut;
    if (opt.burst == 0) throw Napi::RangeError::New(env, "burst must be positive");
    opt.filter = program(o.Get("filter"));
    Napi::Value fanout = o.Get("fanout");
    if (fanout.IsObject()) {
      Napi::Object f = fanout.As<Napi::Object>();
      opt.hasFanout = true;
      opt.fanoutGroup = uint16_t(u32(f, "group", 0));
      opt.fanoutMode = uint16_t(u32(f, "mode", PACKET_FANOUT_HASH));
      opt.fanoutFlags = uint16_t(u32(f, "flags", 0));
    }
    netpd::SysError error{};
    if (!socket_.open(opt, error)) {
      socket_.close();
      throw sysError(env, error.what, error.err);
    }
    napi_add_env_cleanup_hook(env, &SocketWrap::Teardown, this);
    cleanupHook_ = true;
  }

  ~SocketWrap() override {
    stopPolling();
    if (cleanupHook_) napi_remove_env_cleanup_hook(Env(), &SocketWrap::Teardown, this);
  }

 private:
  // attach(bytes: Uint8Array over the arena memory, layout: { meta, data, ... })
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || !info[1].IsObject()) throw Napi::TypeError::New(env, "attach(bytes, layout)");
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value buffer;
    size_t offset;
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[0], &type, &length, &data, &buffer, &offset), env.Undefined());
    if (type != napi_uint8_array) throw Napi::TypeError::New(env, "attach: bytes must be a Uint8Array");
    Napi::Object l = info[1].As<Napi::Object>();
    netpd::ArenaLayout a;
    a.mem = static_cast<uint8_t*>(data);
    a.memBytes = length;
    a.meta = u32(l, "meta", 0);
    a.data = u32(l, "data", 0);
    a.slotSize = u32(l, "slotSize", 0);
    a.slotCount = u32(l, "slotCount", 0);
    a.metaSize = u32(l, "metaSize", 0);
    a.capLen = u32(l, "capLen", 0);
    a.wireLen = u32(l, "wireLen", 0);
    a.tsNs = u32(l, "tsNs", 0);
    a.ifIndex = u32(l, "ifIndex", 0);
    a.flowHash = u32(l, "flowHash", 0);
    a.flags = u32(l, "flags", 0);
    a.truncatedCounter = u32(l, "truncatedCounter", 0);
    const uint64_t end = uint64_t(a.data) + uint64_t(a.slotSize) * a.slotCount;
    const uint64_t metaEnd = uint64_t(a.meta) + uint64_t(a.metaSize) * a.slotCount;
    if (a.slotSize == 0 || end > length || metaEnd > length || a.truncatedCounter + 4 > length) {
      throw Napi::RangeError::New(env, "attach: the layout does not fit the arena memory");
    }
    socket_.attach(a);
    memory_ = Napi::Persistent(info[0].As<Napi::Object>());
    return env.Undefined();
  }

  // Checks (vec, n) against the arena and returns false after throwing if they are bad.
  void burstArgs(const Napi::CallbackInfo& info, uint32_t& vec, uint32_t& n) {
    Napi::Env env = info.Env();
    if (!socket_.attached()) throw Napi::Error::New(env, "no arena attached");
    vec = info[0].As<Napi::Number>().Uint32Value();
    n = info[1].As<Napi::Number>().Uint32Value();
    if (vec % 4 != 0 || uint64_t(vec) + uint64_t(n) * 4 > memory_.Value().As<Napi::Uint8Array>().ByteLength()) {
      throw Napi::RangeError::New(env, "slot vector is outside the arena");
    }
  }

  Napi::Value Receive(const Napi::CallbackInfo& info) {
    uint32_t vec, n;
    burstArgs(info, vec, n);
    return result(info.Env(), socket_.receive(vec, n), "recv");
  }

  Napi::Value Discard(const Napi::CallbackInfo& info) {
    return result(info.Env(), socket_.discard(info[0].As<Napi::Number>().Uint32Value()), "recv");
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    uint32_t vec, n;
    burstArgs(info, vec, n);
    int r = socket_.send(vec, n);
    // A refused frame is reported as -errno so the caller can count it and move on.
    if (r == -EMSGSIZE || r == -EINVAL || r == -ENETDOWN || r == -ENXIO) return Napi::Number::New(info.Env(), r);
    return result(info.Env(), r, "sendmmsg");
  }

  Napi::Value result(Napi::Env env, int r, const char* what) {
    if (r < 0) throw sysError(env, what, -r);
    return Napi::Number::New(env, r);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    netpd::SysError error{};
    if (!socket_.stats(stats_, error)) throw sysError(env, error.what, error.err);
    Napi::Object o = Napi::Object::New(env);
    o.Set("packets", Napi::Number::New(env, double(stats_.packets)));
    o.Set("drops", Napi::Number::New(env, double(stats_.drops)));
    o.Set("received", Napi::Number::New(env, double(socket_.received().packets)));
    o.Set("bytes", Napi::Number::New(env, double(socket_.received().wireBytes)));
    o.Set("skipped", Napi::Number::New(env, double(socket_.received().skipped)));
    return o;
  }

  Napi::Value PendingError(const Napi::CallbackInfo& info) {
    int err = socket_.pendingError();
    if (err == 0) return info.Env().Null();
    return sysError(info.Env(), "SO_ERROR", err).Value();
  }

  // poll(callback): start watching the receive socket; poll(null): stop.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) {
      stopPolling();
      return env.Undefined();
    }
    if (socket_.fd() < 0) throw Napi::Error::New(env, "the socket is closed");
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (!poll_) {
      uv_loop_t* loop = nullptr;
      NAPI_THROW_IF_FAILED(env, napi_get_uv_event_loop(env, &loop), env.Undefined());
      poll_ = new uv_poll_t;
      int r = uv_poll_init(loop, poll_, socket_.fd());
      if (r != 0) {
        delete poll_;
        poll_ = nullptr;
        throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r));
      }
      poll_->data = this;
      Ref();  // a socket being polled must not be collected
    }
    int r = uv_poll_start(poll_, UV_READABLE, &SocketWrap::OnPoll);
    if (r != 0) throw Napi::Error::New(env, std::string("uv_poll_start: ") + uv_strerror(r));
    return env.Undefined();
  }

  // pause(): stop watching the socket but keep the handle; poll(callback) resumes.
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    if (poll_) uv_poll_stop(poll_);
    return info.Env().Undefined();
  }

  // setFilter(words: Uint32Array | null): replace the kernel filter (null: remove it).
  Napi::Value SetFilter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    netpd::SysError error{};
    if (!socket_.setFilter(program(info[0]), error)) throw sysError(env, error.what, error.err);
    return env.Undefined();
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<SocketWrap*>(handle->data);
    if (!self || self->callback_.IsEmpty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    try {
      self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, status), Napi::Number::New(env, events)});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void stopPolling() {
    if (!poll_) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    callback_.Reset();
    Unref();
  }

  static void Teardown(void* arg) {
    auto* self = static_cast<SocketWrap*>(arg);
    self->cleanupHook_ = false;
    if (self->poll_) {
      uv_poll_stop(self->poll_);
      self->poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(self->poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      self->poll_ = nullptr;
    }
    self->socket_.close();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    stopPolling();
    socket_.close();
    memory_.Reset();
    return info.Env().Undefined();
  }

  Napi::Value IfIndex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), socket_.ifindex()); }

  PacketSocket socket_;
  netpd::KernelStats stats_;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::ObjectReference memory_;
  bool cleanupHook_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("PacketSocket", SocketWrap::Define(env));
  Napi::Object fanout = Napi::Object::New(env);
  fanout.Set("hash", PACKET_FANOUT_HASH);
  fanout.Set("lb", PACKET_FANOUT_LB);
  fanout.Set("cpu", PACKET_FANOUT_CPU);
  fanout.Set("defrag", PACKET_FANOUT_FLAG_DEFRAG);
  fanout.Set("rollover", PACKET_FANOUT_FLAG_ROLLOVER);
  exports.Set("fanout", fanout);
  return exports;
}

}  // namespace

NODE_API_MODULE(netpd_afpacket, Init)
