// PNDMScheduler with skip_prk_steps: the pseudo linear multistep (PLMS) sampler of Liu et al. 2022,
// "Pseudo Numerical Methods for Diffusion Models on Manifolds" (eq. 12 with the transfer part of
// eq. 11). Instead of the paper's Runge-Kutta warm-up, diffusers repeats the first step: the second
// call re-evaluates at the next timestep and redoes step one with the average of both noise
// estimates (a Heun-like step). So timesteps() repeats its second entry: n steps, n + 1 calls.
#include "core/schedulers/schedule_math.h"

#include "core/util/error.h"

#include <algorithm>
#include <cmath>
#include <deque>

namespace sdl::detail {
namespace {

class Pndm final : public Scheduler {
public:
    explicit Pndm(SchedulerConfig c) : Scheduler(std::move(c)) {
        if (!config_.skip_prk_steps)
            throw Error("pndm: only the PLMS path is supported (scheduler config skip_prk_steps must be true)");
        if (config_.prediction_type == "sample")
            throw Error("pndm: prediction_type 'sample' is not supported (expected epsilon or v_prediction)");
        final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : acp(0);
    }
    std::string name() const override { return "pndm"; }

    void set_timesteps(int n) override {
        check_steps(n);
        num_inference_steps_ = n;
        const std::vector<int64_t> desc = ddpm_timesteps(config_, n);
        std::vector<double> t(desc.begin(), desc.end());
        if (t.size() > 1)
            t.insert(t.begin() + 1, t[1]);
        timesteps_ = f64_tensor(t);
        sigmas_ = torch::empty({0}, torch::kFloat32);
        ets_.clear();
        cur_sample_ = torch::Tensor();
        counter_ = 0;
    }
    double init_noise_sigma() const override { return 1.0; }
    torch::Tensor scale_model_input(const torch::Tensor& sample, int step_index) const override {
        check_step_index(step_index);
        return sample;
    }

    StepOutput step(const torch::Tensor& model_output, int i, const torch::Tensor& sample,
                    std::optional<torch::Generator>) override {
        check_step_index(i);
        const int ratio = config_.num_train_timesteps / num_inference_steps_;
        int t = static_cast<int>(timesteps_.data_ptr<double>()[i]);
        int prev_t = t - ratio;
        // The history follows the number of calls (diffusers' counter), the timestep the index.
        const torch::Tensor x0 = predict_x0(model_output, sample, t);
        if (counter_ != 1) {
            while (ets_.size() > 3)
                ets_.pop_front();
            ets_.push_back(model_output);
        } else {
            prev_t = t;
            t = t + ratio;
        }

        torch::Tensor eps;
        torch::Tensor x = sample;
        if (ets_.size() == 1 && counter_ == 0) {
            eps = model_output;
            cur_sample_ = sample;
        } else if (ets_.size() == 1 && counter_ == 1) {
            // The repeated step: from the same starting sample with the mean of both estimates.
            eps = (model_output + ets_.back()) / 2;
            x = cur_sample_;
            cur_sample_ = torch::Tensor();
        } else if (ets_.size() == 2) {
            eps = (3 * ets_[1] - ets_[0]) / 2;
        } else if (ets_.size() == 3) {
            eps = (23 * ets_[2] - 16 * ets_[1] + 5 * ets_[0]) / 12;
        } else {
            eps = (1.0 / 24) * (55 * ets_[3] - 59 * ets_[2] + 37 * ets_[1] - 9 * ets_[0]);
        }
        ++counter_;
        return {prev_sample(x, t, prev_t, eps), x0};
    }

    torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                            double timestep) const override {
        return ddpm_add_noise(name(), alphas_cumprod_, original, noise, timestep);
    }

private:
    float acp(int t) const { return alphas_cumprod_.data_ptr<float>()[t]; }

    // diffusers' PNDM returns no x0; for the explorer: the usual x0 = (x - sqrt(1 - acp) eps) / sqrt(acp)
    // from this call's own sample and model output.
    torch::Tensor predict_x0(const torch::Tensor& model_output, const torch::Tensor& sample, int t) const {
        const float a = acp(t);
        if (config_.prediction_type == "v_prediction")
            return std::sqrt(a) * sample - std::sqrt(1 - a) * model_output;
        return (sample - std::sqrt(1 - a) * model_output) / std::sqrt(a);
    }

    // The transfer x_t -> x_{t-delta} of eq. 11 (the DDIM step written so that it stays stable).
    torch::Tensor prev_sample(const torch::Tensor& sample, int t, int prev_t, torch::Tensor eps) const {
        const float a_t = acp(t);
        const float a_prev = prev_t >= 0 ? acp(prev_t) : final_alpha_cumprod_;
        const float b_t = 1 - a_t;
        const float b_prev = 1 - a_prev;
        if (config_.prediction_type == "v_prediction")
            eps = std::sqrt(a_t) * eps + std::sqrt(b_t) * sample;
        const float sample_coeff = std::sqrt(a_prev / a_t);
        const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
        return sample_coeff * sample - (a_prev - a_t) * eps / denom;
    }

    int num_inference_steps_ = 0;
    float final_alpha_cumprod_ = 1.0f;
    std::deque<torch::Tensor> ets_;  // past model outputs, newest last
    torch::Tensor cur_sample_;
    int counter_ = 0;
};

} // namespace

std::unique_ptr<Scheduler> make_pndm(const SchedulerConfig& c) { return std::make_unique<Pndm>(c); }

} // namespace sdl::detail
