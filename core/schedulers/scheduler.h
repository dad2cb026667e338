#pragma once
// Noise schedulers shaped as diffusers shapes them: set_timesteps, scale_model_input, step() that
// returns the previous sample and the predicted clean sample, add_noise. One short file per
// scheduler (lms.cpp, pndm.cpp, ddim.cpp, euler.cpp, euler_ancestral.cpp, dpmpp_2m.cpp, lcm.cpp).
//
// diffusers is the numerical spec, including its dtypes: betas and alphas_cumprod are float32 torch
// tensors, sigmas are float32 values (interpolated in float64 first), scalar coefficients of a step
// are float32. Matching those choices is what keeps us within 1e-5 of the float32 references.
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
    bool use_karras_sigmas = false;                // lms, euler, euler_a, dpmpp_2m (ignored by pndm, ddim)
    double eta = 0.0;                              // DDIM
    int original_inference_steps = 50;             // LCM: the distillation schedule its steps are taken from
    double timestep_scaling = 10.0;                // LCM: t's factor in the boundary-condition scalings

    // Starts from `base` and overrides the keys present in j (null counts as absent; unknown keys,
    // such as _class_name or another scheduler's options, are ignored, as diffusers' from_config
    // does). Validates; throws sdl::Error naming the key or value at fault.
    static SchedulerConfig from_json(const nlohmann::json& j, const SchedulerConfig& base);
    static SchedulerConfig from_json(const nlohmann::json& j);  // base: SchedulerConfig{}
    // Same from a scheduler_config.json file; errors name the file.
    static SchedulerConfig from_file(const std::string& path, const SchedulerConfig& base);
    static SchedulerConfig from_file(const std::string& path);
    nlohmann::json to_json() const;
    // Throws sdl::Error naming a bad value and the allowed ones.
    void validate() const;
};

// The configuration SD 1.x pipelines use for each scheduler (the reference e2e runs use these):
// lms: LMSDiscreteScheduler defaults (linspace, steps_offset 0); pndm: leading, steps_offset 1,
// skip_prk_steps, set_alpha_to_one false; ddim: leading, steps_offset 1, clip_sample false,
// set_alpha_to_one false; euler, euler_a, dpmpp_2m: linspace, steps_offset 1; lcm: LCMScheduler's
// defaults (leading, steps_offset 0, set_alpha_to_one, original_inference_steps 50, timestep_scaling
// 10). All with beta_start 0.00085, beta_end 0.012, scaled_linear, 1000 training steps.
// A model's scheduler_config.json goes on top: SchedulerConfig::from_file(path, default_scheduler_config(name)).
// Unknown name: sdl::Error listing the names.
SchedulerConfig default_scheduler_config(const std::string& name);

struct StepOutput {
    torch::Tensor prev_sample;           // x_{t-1}
    torch::Tensor pred_original_sample;  // predicted x0
};

class Scheduler {
public:
    virtual ~Scheduler() = default;
    virtual std::string name() const = 0;  // "lms", "pndm", "ddim", "euler", "euler_a", "dpmpp_2m", "lcm"

    // Also clears the history of multistep schedulers: call it before every run.
    // Throws sdl::Error unless 1 <= num_inference_steps <= num_train_timesteps (lcm: at most
    // original_inference_steps, whose schedule its timesteps are picked from).
    virtual void set_timesteps(int num_inference_steps) = 0;
    // Timesteps the U-Net is called with, in order (float64; LMS/Euler ones may be fractional, and
    // then hold the float32 values diffusers uses). PNDM repeats its second timestep, as diffusers'
    // scheduler.timesteps does: 8 steps give 9 entries, hence 9 U-Net calls and 9 step() calls.
    const torch::Tensor& timesteps() const { return timesteps_; }
    // float32. Sigmas per step plus the trailing 0 (empty for schedulers without sigmas: PNDM, DDIM).
    const torch::Tensor& sigmas() const { return sigmas_; }
    // float32 [num_train_timesteps]: the training schedule, cumulative product of (1 - beta).
    const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
    virtual double init_noise_sigma() const = 0;

    // step_index counts calls since set_timesteps (0-based), i.e. the index into timesteps().
    // An img2img run that starts part-way passes the absolute index, as diffusers' set_begin_index.
    virtual torch::Tensor scale_model_input(const torch::Tensor& sample, int step_index) const = 0;
    // generator: used by stochastic schedulers (euler_a, ddim with eta > 0, lcm before its last step).
    // Their noise is drawn as diffusers' randn_tensor draws it: on the generator's device, in the
    // model output's dtype (lcm: the denoised sample's). lcm's pred_original_sample is its denoised
    // sample, the consistency function's output c_skip x + c_out x0.
    virtual StepOutput step(const torch::Tensor& model_output, int step_index, const torch::Tensor& sample,
                            std::optional<torch::Generator> generator = std::nullopt) = 0;
    // q(x_t | x_0) at the given timestep, as the scheduler's add_noise: x0 + sigma * noise for LMS
    // and Euler (a) (the timestep is looked up in timesteps(); one not there is an sdl::Error),
    // alpha x0 + sigma_t noise for DPM++ (looked up likewise; diffusers falls back to the last
    // step), sqrt(acp) x0 + sqrt(1 - acp) noise for PNDM/DDIM/LCM (an integer training timestep).
    virtual torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                                    double timestep) const = 0;

    const SchedulerConfig& config() const { return config_; }

protected:
    explicit Scheduler(SchedulerConfig c);
    void check_steps(int num_inference_steps) const;  // throws unless in [1, num_train_timesteps]
    void check_step_index(int step_index) const;       // throws unless in [0, timesteps().size(0))
    SchedulerConfig config_;
    torch::Tensor alphas_cumprod_;
    torch::Tensor timesteps_;
    torch::Tensor sigmas_;
};

// Names: lms, pndm, ddim, euler, euler_a, dpmpp_2m, lcm. An unknown name is an sdl::Error listing these.
// The config is validated first.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config);
const std::vector<std::string>& scheduler_names();
// A scheduler name as a user gave it (a command-line flag, an option): sdl::UsageError listing the names
// when it is none of them.
void check_scheduler_name(const std::string& name);

} // namespace sdl
