// DDIMScheduler: Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12. eta = 0 is the
// deterministic sampler; eta > 0 adds noise of std eta * sigma_t(eta = 1) (eq. 16), eta = 1 being DDPM.
#include "core/schedulers/schedule_math.h"

#include <cmath>

namespace sdl::detail {
namespace {

class Ddim final : public Scheduler {
public:
    explicit Ddim(SchedulerConfig c) : Scheduler(std::move(c)) {
        // The alpha-bar "before" the first training step: 1 (a clean image), or the first
        // training value as SD 1.x configures it (set_alpha_to_one false).
        final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : acp(0);
    }
    std::string name() const override { return "ddim"; }

    void set_timesteps(int n) override {
        check_steps(n);
        num_inference_steps_ = n;
        const auto t = ddpm_timesteps(config_, n);
        timesteps_ = f64_tensor(std::vector<double>(t.begin(), t.end()));
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
        // diffusers steps by the nominal spacing, whatever the spacing of the schedule.
        const int prev_t = t - config_.num_train_timesteps / num_inference_steps_;
        const float a_t = acp(t);
        const float a_prev = prev_t >= 0 ? acp(prev_t) : final_alpha_cumprod_;
        const float b_t = 1 - a_t;

        torch::Tensor x0, eps;
        if (config_.prediction_type == "epsilon") {
            x0 = (sample - std::sqrt(b_t) * model_output) / std::sqrt(a_t);
            eps = model_output;
        } else if (config_.prediction_type == "sample") {
            x0 = model_output;
            eps = (sample - std::sqrt(a_t) * x0) / std::sqrt(b_t);
        } else {  // v_prediction
            x0 = std::sqrt(a_t) * sample - std::sqrt(b_t) * model_output;
            eps = std::sqrt(a_t) * model_output + std::sqrt(b_t) * sample;
        }
        if (config_.clip_sample)
            x0 = x0.clamp(-config_.clip_sample_range, config_.clip_sample_range);

        // sigma_t(eta) of eq. 16, in diffusers' float32 arithmetic.
        const float b_prev = 1 - a_prev;
        const float variance = (b_prev / b_t) * (1 - a_t / a_prev);
        const float std_dev = static_cast<float>(config_.eta) * std::sqrt(variance);
        const torch::Tensor direction = std::sqrt(1 - a_prev - std_dev * std_dev) * eps;
        torch::Tensor prev = std::sqrt(a_prev) * x0 + direction;
        if (config_.eta > 0)
            prev = prev + std_dev * randn_like_diffusers(model_output, generator);
        return {prev, x0};
    }

    torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                            double timestep) const override {
        return ddpm_add_noise(name(), alphas_cumprod_, original, noise, timestep);
    }

private:
    float acp(int t) const { return alphas_cumprod_.data_ptr<float>()[t]; }
    int num_inference_steps_ = 0;
    float final_alpha_cumprod_ = 1.0f;
};

} // namespace

std::unique_ptr<Scheduler> make_ddim(const SchedulerConfig& c) { return std::make_unique<Ddim>(c); }

} // namespace sdl::detail
