#include "core/schedulers/scheduler.h"

#include "core/schedulers/schedule_math.h"
#include "core/util/error.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>

namespace sdl {

namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names)
        out += (out.empty() ? "" : ", ") + n;
    return out;
}

void check_one_of(const std::string& key, const std::string& value, const std::vector<std::string>& allowed) {
    for (const auto& a : allowed)
        if (value == a)
            return;
    throw Error("scheduler config: unknown " + key + " '" + value + "' (expected one of: " + joined(allowed) + ")");
}

const char* json_type(const nlohmann::json& v) { return v.type_name(); }

// Reads j[key] into out when present and not null; a value of the wrong type names the key.
template <typename T>
void read(const nlohmann::json& j, const char* key, T& out) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return;
    bool ok = false;
    if constexpr (std::is_same_v<T, bool>)
        ok = it->is_boolean();
    else if constexpr (std::is_same_v<T, int>)
        ok = (it->is_number_integer() || (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>())) &&
             std::fabs(it->get<double>()) <= 1e6;  // no schedule is longer; also keeps the cast defined
    else if constexpr (std::is_same_v<T, double>)
        ok = it->is_number();
    else if constexpr (std::is_same_v<T, std::string>)
        ok = it->is_string();
    if (!ok)
        throw Error(std::string("scheduler config: '") + key + "' has the wrong type or is out of range (found " + json_type(*it) +
                    ", value " + it->dump() + ")");
    if constexpr (std::is_same_v<T, int>)
        out = static_cast<int>(it->get<double>());
    else
        out = it->get<T>();
}

// betas_for_alpha_bar of diffusers: the cosine schedule of Nichol & Dhariwal 2021 (eq. 17),
// discretised in float64, each beta capped at 0.999.
std::vector<double> cosine_betas(int n) {
    const auto alpha_bar = [](double t) {
        const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
        return c * c;
    };
    std::vector<double> betas;
    for (int i = 0; i < n; ++i) {
        const double t1 = static_cast<double>(i) / n;
        const double t2 = static_cast<double>(i + 1) / n;
        betas.push_back(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
    }
    return betas;
}

} // namespace

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j, const SchedulerConfig& base) {
    if (!j.is_object())
        throw Error(std::string("scheduler config: expected a JSON object, found ") + json_type(j));
    SchedulerConfig c = base;
    read(j, "num_train_timesteps", c.num_train_timesteps);
    read(j, "beta_start", c.beta_start);
    read(j, "beta_end", c.beta_end);
    read(j, "beta_schedule", c.beta_schedule);
    if (const auto it = j.find("trained_betas"); it != j.end() && !it->is_null()) {
        if (!it->is_array())
            throw Error(std::string("scheduler config: 'trained_betas' must be a list of numbers, found ") +
                        json_type(*it));
        c.trained_betas.clear();
        for (const auto& b : *it) {
            if (!b.is_number())
                throw Error("scheduler config: 'trained_betas' holds a non-number: " + b.dump());
            c.trained_betas.push_back(b.get<double>());
        }
    }
    read(j, "steps_offset", c.steps_offset);
    read(j, "timestep_spacing", c.timestep_spacing);
    read(j, "prediction_type", c.prediction_type);
    read(j, "set_alpha_to_one", c.set_alpha_to_one);
    read(j, "skip_prk_steps", c.skip_prk_steps);
    read(j, "clip_sample", c.clip_sample);
    read(j, "clip_sample_range", c.clip_sample_range);
    read(j, "use_karras_sigmas", c.use_karras_sigmas);
    read(j, "eta", c.eta);
    read(j, "original_inference_steps", c.original_inference_steps);
    read(j, "timestep_scaling", c.timestep_scaling);
    c.validate();
    return c;
}

SchedulerConfig SchedulerConfig::from_file(const std::string& path, const SchedulerConfig& base) {
    std::ifstream in(path);
    if (!in)
        throw Error(path + ": cannot open the scheduler config");
    try {
        return from_json(nlohmann::json::parse(in), base);
    } catch (const nlohmann::json::exception& e) {
        throw Error(path + ": not valid JSON (" + e.what() + ")");
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
}

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j) { return from_json(j, SchedulerConfig{}); }

SchedulerConfig SchedulerConfig::from_file(const std::string& path) { return from_file(path, SchedulerConfig{}); }

nlohmann::json SchedulerConfig::to_json() const {
    nlohmann::json j = {{"num_train_timesteps", num_train_timesteps},
                        {"beta_start", beta_start},
                        {"beta_end", beta_end},
                        {"beta_schedule", beta_schedule},
                        {"steps_offset", steps_offset},
                        {"timestep_spacing", timestep_spacing},
                        {"prediction_type", prediction_type},
                        {"set_alpha_to_one", set_alpha_to_one},
                        {"skip_prk_steps", skip_prk_steps},
                        {"clip_sample", clip_sample},
                        {"clip_sample_range", clip_sample_range},
                        {"use_karras_sigmas", use_karras_sigmas},
                        {"eta", eta},
                        {"original_inference_steps", original_inference_steps},
                        {"timestep_scaling", timestep_scaling}};
    j["trained_betas"] = trained_betas.empty() ? nlohmann::json(nullptr) : nlohmann::json(trained_betas);
    return j;
}

void SchedulerConfig::validate() const {
    check_one_of("beta_schedule", beta_schedule, {"linear", "scaled_linear", "squaredcos_cap_v2"});
    check_one_of("timestep_spacing", timestep_spacing, {"linspace", "leading", "trailing"});
    check_one_of("prediction_type", prediction_type, {"epsilon", "v_prediction", "sample"});
    if (num_train_timesteps < 2)
        throw Error("scheduler config: num_train_timesteps must be at least 2, found " +
                    std::to_string(num_train_timesteps));
    if (!trained_betas.empty() && static_cast<int>(trained_betas.size()) != num_train_timesteps)
        throw Error("scheduler config: trained_betas has " + std::to_string(trained_betas.size()) +
                    " values, num_train_timesteps is " + std::to_string(num_train_timesteps));
    if (steps_offset < 0)
        throw Error("scheduler config: steps_offset must be >= 0, found " + std::to_string(steps_offset));
    if (eta < 0)
        throw Error("scheduler config: eta must be >= 0, found " + std::to_string(eta));
    if (original_inference_steps < 1)
        throw Error("scheduler config: original_inference_steps must be at least 1, found " +
                    std::to_string(original_inference_steps));
    // Not finite or not positive would make LCM's c_out NaN or negative.
    if (!(timestep_scaling > 0) || !std::isfinite(timestep_scaling))
        throw Error("scheduler config: timestep_scaling must be a positive number, found " +
                    std::to_string(timestep_scaling));
}

SchedulerConfig default_scheduler_config(const std::string& name) {
    SchedulerConfig c;
    if (name == "lms")
        return c;
    if (name == "pndm" || name == "ddim") {
        c.timestep_spacing = "leading";
        c.steps_offset = 1;
        return c;
    }
    if (name == "euler" || name == "euler_a" || name == "dpmpp_2m") {
        c.steps_offset = 1;
        return c;
    }
    if (name == "lcm") {
        c.timestep_spacing = "leading";
        c.set_alpha_to_one = true;
        return c;
    }
    throw Error("unknown scheduler '" + name + "' (expected one of: " + joined(scheduler_names()) + ")");
}

Scheduler::Scheduler(SchedulerConfig c) : config_(std::move(c)) {
    const int n = config_.num_train_timesteps;
    torch::Tensor betas;
    if (!config_.trained_betas.empty())
        betas = detail::f32_tensor(config_.trained_betas);
    else if (config_.beta_schedule == "linear")
        betas = torch::linspace(config_.beta_start, config_.beta_end, n, torch::kFloat32);
    else if (config_.beta_schedule == "scaled_linear")
        // Linear in sqrt(beta), as the original LDM code; float32 torch ops like diffusers.
        betas = torch::linspace(std::pow(config_.beta_start, 0.5), std::pow(config_.beta_end, 0.5), n,
                                torch::kFloat32).pow(2);
    else
        betas = detail::f32_tensor(cosine_betas(n));
    alphas_cumprod_ = torch::cumprod(1.0 - betas, 0);
}

void Scheduler::check_steps(int num_inference_steps) const {
    if (num_inference_steps < 1 || num_inference_steps > config_.num_train_timesteps)
        throw Error(name() + ": the number of steps must be between 1 and " +
                    std::to_string(config_.num_train_timesteps) + ", found " + std::to_string(num_inference_steps));
}

void Scheduler::check_step_index(int step_index) const {
    if (!timesteps_.defined())
        throw Error(name() + ": set_timesteps must be called before stepping");
    if (step_index < 0 || step_index >= timesteps_.size(0))
        throw Error(name() + ": step index " + std::to_string(step_index) + " is outside the schedule of " +
                    std::to_string(timesteps_.size(0)) + " timesteps");
}

const std::vector<std::string>& scheduler_names() {
    static const std::vector<std::string> names{"lms", "pndm", "ddim", "euler", "euler_a", "dpmpp_2m", "lcm"};
    return names;
}

void check_scheduler_name(const std::string& name) {
    const auto& names = scheduler_names();
    if (std::find(names.begin(), names.end(), name) == names.end())
        throw UsageError("unknown scheduler '" + name + "' (expected one of: " + joined(names) + ")");
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config) {
    using Make = std::function<std::unique_ptr<Scheduler>(const SchedulerConfig&)>;
    static const std::map<std::string, Make> table{
        {"lms", detail::make_lms},     {"pndm", detail::make_pndm},
        {"ddim", detail::make_ddim},   {"euler", detail::make_euler},
        {"euler_a", detail::make_euler_ancestral}, {"dpmpp_2m", detail::make_dpmpp_2m},
        {"lcm", detail::make_lcm}};
    const auto it = table.find(name);
    if (it == table.end())
        throw Error("unknown scheduler '" + name + "' (expected one of: " + joined(scheduler_names()) + ")");
    config.validate();
    return it->second(config);
}

} // namespace sdl
