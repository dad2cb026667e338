// sdlens-cli schedule [--scheduler NAME] [--steps N] [--karras] [--model PATH]
// The noise schedule a run would use, as one JSON object: timesteps, sigmas, init_noise_sigma,
// the training alphas_cumprod and the configuration they came from.
#include "app/cli/command.h"
#include "core/io/hf_cache.h"
#include "core/schedulers/scheduler.h"
#include "core/util/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace {

// SD 1.x's configuration for the scheduler, with a diffusers folder's scheduler_config.json on top
// (its beta schedule, steps_offset, spacing and prediction type win, as with diffusers'
// from_config). A single-file checkpoint carries no scheduler config.
sdl::SchedulerConfig config_for(const std::string& name, const std::optional<std::string>& model) {
    sdl::SchedulerConfig c = sdl::default_scheduler_config(name);
    if (!model)
        return c;
    std::error_code ec;
    const std::string root = sdl::local_model_path(*model);
    const fs::path file = fs::path(root) / "scheduler" / "scheduler_config.json";
    if (fs::is_regular_file(file, ec))
        c = sdl::SchedulerConfig::from_file(file.string(), c);
    return c;
}

// Integer schedules (PNDM, DDIM, DPM++, LCM) print as integers, fractional ones (LMS, Euler) as numbers.
nlohmann::json values(const torch::Tensor& t) {
    const torch::Tensor d = t.to(torch::kFloat64).contiguous();
    const double* p = d.data_ptr<double>();
    const std::vector<double> v(p, p + d.numel());
    if (std::all_of(v.begin(), v.end(), [](double x) { return x == std::floor(x); }))
        return nlohmann::json(std::vector<int64_t>(v.begin(), v.end()));
    return nlohmann::json(v);
}

int run_schedule(sdl::cli::Args& args) {
    const std::string name = args.get_or("--scheduler", "lms");
    const int steps = args.get_int("--steps", 50);
    const bool karras = args.has("--karras");
    const auto model = args.get("--model");
    args.finish();

    sdl::check_scheduler_name(name);
    if (karras && (name == "pndm" || name == "ddim" || name == "lcm"))
        throw sdl::UsageError("--karras applies to sigma schedulers (lms, euler, euler_a, dpmpp_2m), not " + name);
    if (steps < 1)
        throw sdl::UsageError("--steps must be at least 1, got " + std::to_string(steps));

    sdl::SchedulerConfig config = config_for(name, model);
    config.use_karras_sigmas = config.use_karras_sigmas || karras;
    const auto scheduler = sdl::make_scheduler(name, config);
    scheduler->set_timesteps(steps);

    const nlohmann::json out = {
        {"scheduler", name},
        {"steps", steps},
        {"timesteps", values(scheduler->timesteps())},
        {"sigmas", values(scheduler->sigmas())},
        {"init_noise_sigma", scheduler->init_noise_sigma()},
        {"alphas_cumprod", values(scheduler->alphas_cumprod())},
        {"config", config.to_json()},
    };
    std::cout << out.dump() << '\n';
    return 0;
}

sdl::cli::Register reg{"schedule", "Print a scheduler's timesteps, sigmas and init_noise_sigma as JSON",
                       {"--karras"}, run_schedule};

} // namespace
