// Torch before Qt: Qt's `slots` and `signals` keyword macros break torch's headers.
#include "core/schedulers/scheduler.h"

#include "ui/worker/schedules.h"

#include <cmath>

namespace sdlui {

QStringList schedulerNames() {
    QStringList names;
    for (const auto& n : sdl::scheduler_names())
        names << QString::fromStdString(n);
    return names;
}

namespace {
// alpha_bar(t) of the scaled_linear schedule: the betas are linear in sqrt(beta).
std::vector<double> alphasCumprod(const sdl::SchedulerConfig& c) {
    std::vector<double> out(c.num_train_timesteps);
    const double a = std::sqrt(c.beta_start), b = std::sqrt(c.beta_end);
    double prod = 1.0;
    for (int i = 0; i < c.num_train_timesteps; ++i) {
        const double s = a + (b - a) * i / (c.num_train_timesteps - 1);
        prod *= 1.0 - s * s;
        out[i] = prod;
    }
    return out;
}
} // namespace

Schedule computeSchedule(const QString& scheduler, int steps, bool karras) {
    sdl::SchedulerConfig config;
    config.use_karras_sigmas = karras;
    auto s = sdl::make_scheduler(scheduler.toStdString(), config);
    s->set_timesteps(steps);

    Schedule out;
    out.scheduler = scheduler;
    out.steps = steps;
    const auto t = s->timesteps().to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < t.numel(); ++i)
        out.timesteps << t.data_ptr<double>()[i];
    const auto& sig = s->sigmas();
    if (sig.defined() && sig.numel() > 0) {
        const auto sd = sig.to(torch::kFloat64).contiguous();
        for (int64_t i = 0; i < std::min<int64_t>(sd.numel(), out.timesteps.size()); ++i)
            out.sigmas << sd.data_ptr<double>()[i];
    } else {
        const auto ac = alphasCumprod(config);
        for (double ts : out.timesteps) {
            const int k = std::clamp(int(std::lround(ts)), 0, int(ac.size()) - 1);
            out.sigmas << std::sqrt((1.0 - ac[k]) / ac[k]);
        }
        out.sigmasDerived = true;
    }
    return out;
}

} // namespace sdlui
