#include "core/models/onednn_conv.h"

#include "core/util/error.h"

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#ifdef SDLENS_WITH_ONEDNN
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>
#endif

namespace sdl {
namespace {
std::atomic<CpuConv> g_conv{have_onednn_conv() ? CpuConv::onednn : CpuConv::aten};
} // namespace

bool have_onednn_conv() {
#ifdef SDLENS_WITH_ONEDNN
    return true;
#else
    return false;
#endif
}

void set_cpu_conv(CpuConv c) {
    if (c == CpuConv::onednn && !have_onednn_conv())
        throw UsageError("this build of SD Lens has no oneDNN (install libdnnl-dev and configure again); use "
                         "--conv-kernel aten");
    g_conv = c;
}

CpuConv cpu_conv() { return g_conv; }

bool onednn_conv_applies(const torch::Tensor& x, const torch::Tensor& weight) {
    // weight: a Conv2d's, 4-D, or empty while only its packed copy exists.
    if (g_conv != CpuConv::onednn || !x.device().is_cpu() || x.dim() != 4 || !weight.device().is_cpu())
        return false;
    if (x.scalar_type() != weight.scalar_type() ||
        (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kBFloat16))
        return false;
    return !(torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad()));
}

#ifdef SDLENS_WITH_ONEDNN

namespace {

dnnl::engine& cpu_engine() {
    static dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}

dnnl::memory::data_type dnnl_type(torch::ScalarType t) {
    return t == torch::kBFloat16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

// What identifies a weight's values: another tensor (a dtype or memory-format change, a LoRA merge
// by set_data) has another data pointer; an in-place write bumps the version counter. Tensors made
// in inference mode have no counter, and are never written in place after loading here.
struct WeightKey {
    const void* data = nullptr;
    int64_t version = -1;
    torch::ScalarType dtype = torch::kFloat;
    bool operator==(const WeightKey& o) const {
        return data == o.data && version == o.version && dtype == o.dtype;
    }
};

WeightKey key_of(const torch::Tensor& t) {
    if (!t.defined())
        return {};
    return {t.data_ptr(), t.is_inference() ? -1 : static_cast<int64_t>(t._version()), t.scalar_type()};
}

std::string g_impl;  // the implementation oneDNN chose for the last primitive made: the label's detail
std::mutex g_impl_mutex;

} // namespace

class OnednnConvCache {
public:
    torch::Tensor run(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                      int64_t stride, int64_t padding);
    void release(torch::Tensor& weight);
    void restore(torch::Tensor& weight);
    bool stale(const torch::Tensor& weight) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return released_sizes_.empty() && !(key_of(weight) == weight_key_);
    }

private:
    struct Primitive {
        dnnl::convolution_forward conv;
        dnnl::memory::desc src, dst, weights;
        int64_t out_h = 0, out_w = 0;
    };
    const dnnl::memory& packed_for(const dnnl::memory::desc& wanted, const torch::Tensor& weight);

    mutable std::mutex mutex_;
    WeightKey weight_key_, bias_key_;
    std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, Primitive> primitives_;
    // Usually one packed copy; another only when some input shape makes oneDNN pick another layout.
    std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> packed_;
    // The plain weight's shape and layout while only the packed copy holds its values.
    std::vector<int64_t> released_sizes_;
    bool released_channels_last_ = false;
};

void OnednnConvCache::release(torch::Tensor& weight) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (packed_.empty() || !released_sizes_.empty() || !(key_of(weight) == weight_key_))
        return;
    released_sizes_ = weight.sizes().vec();
    released_channels_last_ = !weight.is_contiguous() && weight.is_contiguous(torch::MemoryFormat::ChannelsLast);
    weight.set_data(torch::empty({0}, weight.options()));
    weight_key_ = key_of(weight);
}

void OnednnConvCache::restore(torch::Tensor& weight) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_sizes_.empty())
        return;
    auto plain = torch::empty(released_sizes_, weight.options());  // [O, I, kH, kW]
    auto& eng = cpu_engine();
    dnnl::memory dst({{plain.size(0), plain.size(1), plain.size(2), plain.size(3)}, dnnl_type(plain.scalar_type()),
                      dnnl::memory::format_tag::oihw},
                     eng, plain.data_ptr());
    dnnl::memory& src = packed_.front().second;
    dnnl::stream s(eng);
    dnnl::reorder(src, dst).execute(s, src, dst);
    s.wait();
    weight.set_data(released_channels_last_ ? plain.contiguous(torch::MemoryFormat::ChannelsLast) : plain);
    weight_key_ = key_of(weight);
    released_sizes_.clear();
}

const dnnl::memory& OnednnConvCache::packed_for(const dnnl::memory::desc& wanted, const torch::Tensor& weight) {
    for (const auto& [desc, mem] : packed_)
        if (desc == wanted)
            return mem;
    auto& eng = cpu_engine();
    // From the plain weight, or, while it is released, from the layout already packed.
    const auto plain = released_sizes_.empty() ? weight.contiguous() : torch::Tensor();  // [O, I, kH, kW]
    dnnl::memory src = plain.defined()
                           ? dnnl::memory({{plain.size(0), plain.size(1), plain.size(2), plain.size(3)},
                                           dnnl_type(plain.scalar_type()), dnnl::memory::format_tag::oihw},
                                          eng, plain.data_ptr())
                           : packed_.front().second;
    dnnl::memory dst(wanted, eng);
    dnnl::stream s(eng);
    dnnl::reorder(src, dst).execute(s, src, dst);
    s.wait();
    packed_.emplace_back(wanted, dst);
    return packed_.back().second;
}

torch::Tensor OnednnConvCache::run(const torch::Tensor& x_in, const torch::Tensor& weight, const torch::Tensor& bias,
                                   int64_t stride, int64_t padding) {
    using tag = dnnl::memory::format_tag;
    std::lock_guard<std::mutex> lock(mutex_);
    const auto wkey = key_of(weight), bkey = key_of(bias);
    if (!(wkey == weight_key_) || !(bkey == bias_key_)) {
        if (!released_sizes_.empty())
            throw Error("convolution: a weight held only in oneDNN's layout was replaced or written; restore it "
                        "(restore_plain_weight) before changing it");
        primitives_.clear();
        packed_.clear();
        weight_key_ = wkey;
        bias_key_ = bkey;
    }
    const auto x = x_in.contiguous(torch::MemoryFormat::ChannelsLast);  // [B, I, H, W] stored NHWC
    const int64_t b = x.size(0), in = x.size(1), h = x.size(2), w = x.size(3);
    const std::vector<int64_t> wsizes = released_sizes_.empty() ? weight.sizes().vec() : released_sizes_;
    const int64_t out = wsizes[0], k = wsizes[2];
    if (wsizes[1] != in)
        throw Error("convolution: the input has " + std::to_string(in) + " channels, the weight expects " +
                    std::to_string(wsizes[1]));
    const auto key = std::make_tuple(b, h, w, stride, padding);
    auto it = primitives_.find(key);
    if (it == primitives_.end()) {
        const auto dt = dnnl_type(x.scalar_type());
        const int64_t oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1;
        dnnl::memory::desc src({b, in, h, w}, dt, tag::nhwc), dst({b, out, oh, ow}, dt, tag::nhwc);
        dnnl::memory::desc wany({out, in, k, k}, dt, tag::any);
        dnnl::memory::desc bmd = bias.defined() ? dnnl::memory::desc({out}, dt, tag::a) : dnnl::memory::desc();
        dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                          src, wany, bmd, dst, {stride, stride}, {padding, padding},
                                          {padding, padding});
        dnnl::convolution_forward::primitive_desc pd(d, cpu_engine());
        {
            std::lock_guard<std::mutex> impl_lock(g_impl_mutex);
            g_impl = pd.impl_info_str();
        }
        it = primitives_.emplace(key, Primitive{dnnl::convolution_forward(pd), src, dst, pd.weights_desc(), oh, ow})
                 .first;
    }
    const Primitive& p = it->second;
    const dnnl::memory& packed = packed_for(p.weights, weight);
    auto y = torch::empty({b, out, p.out_h, p.out_w}, x.options().memory_format(torch::MemoryFormat::ChannelsLast));
    auto& eng = cpu_engine();
    dnnl::memory src(p.src, eng, x.data_ptr()), dst(p.dst, eng, y.data_ptr());
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dst}};
    torch::Tensor b_contig;
    if (bias.defined()) {
        b_contig = bias.contiguous();
        args.emplace(DNNL_ARG_BIAS, dnnl::memory({{out}, dnnl_type(b_contig.scalar_type()), tag::a}, eng,
                                                 b_contig.data_ptr()));
    }
    // oneDNN's OpenMP runtime sizes its team from the calling thread's setting, which at::set_num_threads
    // sets only on the thread that called it (the GUI runs the pipeline on a worker thread).
    if (omp_get_max_threads() != at::get_num_threads())
        omp_set_num_threads(at::get_num_threads());
    dnnl::stream s(eng);
    p.conv.execute(s, args);
    s.wait();
    return y;
}

const char* cpu_conv_label() {
    static thread_local std::string label;
    if (g_conv == CpuConv::aten)
        return "aten";
    std::lock_guard<std::mutex> lock(g_impl_mutex);
    label = "onednn " + std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + "." +
            std::to_string(DNNL_VERSION_PATCH) + (g_impl.empty() ? "" : " (" + g_impl + ")");
    return label.c_str();
}

torch::Tensor onednn_conv2d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            int64_t stride, int64_t padding, std::shared_ptr<OnednnConvCache>& cache) {
    RECORD_FUNCTION("sdl::onednn_conv2d", std::vector<c10::IValue>());  // named in bench --profile
    if (!cache)
        cache = std::make_shared<OnednnConvCache>();
    return cache->run(x, weight, bias, stride, padding);
}

void release_plain_weight(OnednnConvCache* cache, torch::Tensor& weight) {
    if (cache)
        cache->release(weight);
}

void restore_plain_weight(OnednnConvCache* cache, torch::Tensor& weight) {
    if (cache)
        cache->restore(weight);
}

bool onednn_cache_stale(const OnednnConvCache* cache, const torch::Tensor& weight) {
    return cache && cache->stale(weight);
}

#else

class OnednnConvCache {};

void release_plain_weight(OnednnConvCache*, torch::Tensor&) {}
void restore_plain_weight(OnednnConvCache*, torch::Tensor&) {}
bool onednn_cache_stale(const OnednnConvCache*, const torch::Tensor&) { return false; }

const char* cpu_conv_label() { return "aten"; }

torch::Tensor onednn_conv2d(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, int64_t, int64_t,
                            std::shared_ptr<OnednnConvCache>&) {
    throw Error("onednn_conv2d: this build has no oneDNN");
}

#endif

} // namespace sdl
