// LCMScheduler: multistep latent consistency sampling, Luo et al. 2023, "Latent Consistency Models"
// (Algorithm 3). The model was distilled to map any point of a coarse DDIM-like schedule
// (original_inference_steps timesteps) straight to its clean sample, so each step jumps to the
// prediction and then re-noises it to the next, earlier timestep with fresh noise.
#include "core/schedulers/schedule_math.h"

#include "core/util/error.h"

#include <cmath>

namespace sdl::detail {
namespace {

class Lcm final : public Scheduler {
public:
    explicit Lcm(SchedulerConfig c) : Scheduler(std::move(c)) {}
    std::string name() const override { return "lcm"; }

    void set_timesteps(int n) override {
        check_steps(n);
        const int original = config_.original_inference_steps;
        const int train = config_.num_train_timesteps;
        if (original > train)
            throw Error("lcm: original_inference_steps " + std::to_string(original) +
                        " is more than the model's " + std::to_string(train) +
                        " training timesteps; fix original_inference_steps in the scheduler config");
        // The steps are a subset of the distillation schedule; asking for more cannot be met.
        if (n > original)
            throw Error("lcm: " + std::to_string(n) + " steps are more than the " + std::to_string(original) +
                        " timesteps the model was distilled on (original_inference_steps); use at most " +
                        std::to_string(original) + " steps (LCM is made for 4 to 8)");
        // The distillation schedule, latest first: k - 1, 2k - 1, ..., original * k - 1 reversed.
        // Picking every (original / n)-th entry, as np.linspace(0, original, n, endpoint=False)
        // floored, always starts at the last training timestep.
        const int k = train / original;
        const double stride = static_cast<double>(original) / n;
        std::vector<double> t;
        for (int i = 0; i < n; ++i) {
            const auto j = static_cast<int>(std::floor(i * stride));
            t.push_back(static_cast<double>(original - j) * k - 1);
        }
        timesteps_ = f64_tensor(t);
        sigmas_ = torch::empty({0}, torch::kFloat32);
    }
    double init_noise_sigma() const override { return 1.0; }
    torch::Tensor scale_model_input(const torch::Tensor& sample, int step_index) const override {
        check_step_index(step_index);
        return sample;
    }

    StepOutput step(const torch::Tensor& model_output, int i, const torch::Tensor& sample,
                    std::optional<torch::Generator> generator) override {
        check_step_index(i);
        const int t = static_cast<int>(timesteps_.data_ptr<double>()[i]);
        const bool last = i == timesteps_.size(0) - 1;
        const float a_t = acp(t);
        const float b_t = 1 - a_t;

        torch::Tensor x0;
        if (config_.prediction_type == "epsilon")
            x0 = (sample - std::sqrt(b_t) * model_output) / std::sqrt(a_t);
        else if (config_.prediction_type == "sample")
            x0 = model_output;
        else  // v_prediction
            x0 = std::sqrt(a_t) * sample - std::sqrt(b_t) * model_output;
        if (config_.clip_sample)
            x0 = x0.clamp(-config_.clip_sample_range, config_.clip_sample_range);

        // The consistency function f(x, t) = c_skip(t) x + c_out(t) x0 of Song et al. 2023 (eq. 3,
        // as diffusers writes it: sigma_data = 0.5 and no sigma_data factor in c_out), so that
        // f(x, 0) = x. Scaling t by timestep_scaling makes c_skip negligible on every timestep of
        // the schedule, so f is all but the plain x0 prediction. float32, as diffusers' tensor math.
        const float sigma_data = 0.5f;
        const float st = static_cast<float>(t) * static_cast<float>(config_.timestep_scaling);
        const float d = st * st + sigma_data * sigma_data;
        const float c_skip = sigma_data * sigma_data / d;
        const float c_out = st / std::sqrt(d);
        const torch::Tensor denoised = c_out * x0 + c_skip * sample;
        if (last)
            return {denoised, denoised};

        // Forward diffusion of the prediction to the next timestep (Ho et al. 2020, eq. 4).
        const float a_prev = acp(static_cast<int>(timesteps_.data_ptr<double>()[i + 1]));
        const torch::Tensor noise = randn_like_diffusers(denoised, generator);
        return {std::sqrt(a_prev) * denoised + std::sqrt(1 - a_prev) * noise, denoised};
    }

    torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                            double timestep) const override {
        return ddpm_add_noise(name(), alphas_cumprod_, original, noise, timestep);
    }

private:
    float acp(int t) const { return alphas_cumprod_.data_ptr<float>()[t]; }
};

} // namespace

std::unique_ptr<Scheduler> make_lcm(const SchedulerConfig& c) { return std::make_unique<Lcm>(c); }

} // namespace sdl::detail
