// scheduler_config.json as downloaded with a model. Byte 0 picks the scheduler and the step count;
// the rest is the JSON. An accepted config is then used: set_timesteps and every step on a tiny
// latent, which must not fail with anything but sdl::Error (a torch error here is a finding: the
// config should have been refused up front with a message naming the key).
#include "core/schedulers/scheduler.h"
#include "fuzz/harness.h"

using namespace sdl;

namespace {
// Real configs use 1000. Larger ones only make each input slow (the training schedule is
// num_train_timesteps long); the memory this costs is a separate question from parsing.
constexpr int kMaxTrainSteps = 4000;
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool single_thread = (torch::set_num_threads(1), true);
    (void)single_thread;
    if (size < 1)
        return 0;
    const auto& names = scheduler_names();
    const std::string& name = names[data[0] % names.size()];
    const int steps = 1 + (data[0] >> 3) % 25;
    const auto j = nlohmann::json::parse(data + 1, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
        return 0;
    SchedulerConfig c;
    if (!fuzz::accepts([&] { c = SchedulerConfig::from_json(j, default_scheduler_config(name)); }))
        return 0;
    fuzz::check(fuzz::accepts([&] { SchedulerConfig::from_json(c.to_json()); }),
                "to_json() of an accepted config is refused");
    if (c.num_train_timesteps > kMaxTrainSteps)
        return 0;
    torch::NoGradGuard no_grad;
    fuzz::accepts([&] {
        auto s = make_scheduler(name, c);
        s->set_timesteps(steps);
        const auto n = s->timesteps().size(0);
        fuzz::check(n >= 1, "no timesteps");
        torch::Tensor x = torch::zeros({1, 4, 8, 8}) * s->init_noise_sigma();
        const torch::Tensor eps = torch::full({1, 4, 8, 8}, 0.5);
        torch::Generator gen = at::detail::createCPUGenerator(0);
        for (int i = 0; i < n; ++i) {
            const auto in = s->scale_model_input(x, i);
            fuzz::check(in.sizes() == x.sizes(), "scale_model_input changed the shape");
            x = s->step(eps, i, x, gen).prev_sample;
            fuzz::check(x.sizes() == eps.sizes(), "step changed the shape");
        }
        s->add_noise(torch::zeros({1, 4, 8, 8}), eps, s->timesteps()[0].item<double>());
    });
    return 0;
}
