#pragma once
// Noise schedulers shaped as diffusers shapes them: set_timesteps, scale_model_input, step() that
// returns the previous sample and the predicted clean sample, add_noise. One short file per
// scheduler (lms.cpp, pndm.cpp, ddim.cpp, euler.cpp, euler_ancestral.cpp, dpmpp_2m.cpp).
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sdl {

// scheduler_config.json; defaults are SD 1.x's.
struct SchedulerConfig {
    int num_train_timesteps = 1000;
    double beta_start = 0.00085;
    double beta_end = 0.012;
    std::string beta_schedule = "scaled_linear";  // "linear", "scaled_linear", "squaredcos_cap_v2"
    std::vector<double> trained_betas;             // overrides the schedule when non-empty
    int steps_offset = 0;
    std::string timestep_spacing = "linspace";     // "linspace", "leading", "trailing"
    std::string prediction_type = "epsilon";       // "epsilon", "v_prediction", "sample"
    bool set_alpha_to_one = false;                 // PNDM, DDIM
    bool skip_prk_steps = true;                    // PNDM (only the PLMS path is supported)
    bool clip_sample = false;                      // DDIM
    double clip_sample_range = 1.0;
    bool use_karras_sigmas = false;
    double eta = 0.0;                              // DDIM

    static SchedulerConfig from_json(const nlohmann::json& j);  // validates; throws sdl::Error
};

struct StepOutput {
    torch::Tensor prev_sample;           // x_{t-1}
    torch::Tensor pred_original_sample;  // predicted x0
};

class Scheduler {
public:
    virtual ~Scheduler() = default;
    virtual std::string name() const = 0;  // "lms", "pndm", "ddim", "euler", "euler_a", "dpmpp_2m"

    virtual void set_timesteps(int num_inference_steps) = 0;
    // Timesteps the U-Net is called with, in order (float64; LMS/Euler ones may be fractional).
    const torch::Tensor& timesteps() const { return timesteps_; }
    // Sigmas per step plus the trailing 0 (empty for schedulers without sigmas: PNDM, DDIM).
    const torch::Tensor& sigmas() const { return sigmas_; }
    virtual double init_noise_sigma() const = 0;

    // step_index counts calls since set_timesteps (0-based), i.e. the index into timesteps().
    virtual torch::Tensor scale_model_input(const torch::Tensor& sample, int step_index) const = 0;
    // generator: used by stochastic schedulers (euler_a, ddim with eta > 0).
    virtual StepOutput step(const torch::Tensor& model_output, int step_index, const torch::Tensor& sample,
                            std::optional<torch::Generator> generator = std::nullopt) = 0;
    // q(x_t | x_0) at the given timestep, as the scheduler's add_noise.
    virtual torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                                    double timestep) const = 0;

    const SchedulerConfig& config() const { return config_; }

protected:
    explicit Scheduler(SchedulerConfig c) : config_(std::move(c)) {}
    SchedulerConfig config_;
    torch::Tensor timesteps_;
    torch::Tensor sigmas_;
};

// Names: lms, pndm, ddim, euler, euler_a, dpmpp_2m. An unknown name is an sdl::Error listing these.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config);
const std::vector<std::string>& scheduler_names();

} // namespace sdl
