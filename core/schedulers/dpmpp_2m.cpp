// DPMSolverMultistepScheduler with its defaults: DPM-Solver++(2M), Lu et al. 2022, "DPM-Solver++:
// Fast Solver for Guided Sampling of Diffusion Probabilistic Models", Algorithm 2 (data prediction,
// second order, multistep; diffusers' "midpoint" form). Works in lambda = log(alpha_t / sigma_t).
// The first step and the last step are first order (lower_order_final, final sigma 0).
#include "core/schedulers/schedule_math.h"

#include <algorithm>
#include <cmath>

namespace sdl::detail {
namespace {

// VP alpha_t and sigma_t of a k-diffusion sigma: alpha = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha.
struct AlphaSigma {
    float alpha, sigma, lambda;
    explicit AlphaSigma(float s)
        : alpha(1.0f / std::sqrt(s * s + 1.0f)), sigma(s * alpha), lambda(std::log(alpha) - std::log(sigma)) {}
};

class DpmSolverPP2M final : public Scheduler {
public:
    explicit DpmSolverPP2M(SchedulerConfig c) : Scheduler(std::move(c)) {}
    std::string name() const override { return "dpmpp_2m"; }

    void set_timesteps(int n) override {
        check_steps(n);
        const int N = config_.num_train_timesteps;
        std::vector<double> t;
        if (config_.timestep_spacing == "linspace") {
            // n + 1 points over the training range, the last (0) dropped.
            for (double v : np_linspace(0, N - 1, n + 1))
                t.push_back(np_round(v));
            std::reverse(t.begin(), t.end());
            t.pop_back();
        } else if (config_.timestep_spacing == "leading") {
            const int ratio = N / (n + 1);
            for (int i = n; i >= 1; --i)
                t.push_back(static_cast<double>(i) * ratio + config_.steps_offset);
        } else {  // trailing
            for (double v : np_arange_down(N, static_cast<double>(N) / n, n))
                t.push_back(np_round(v) - 1);
        }
        const std::vector<double> train = training_sigmas(alphas_cumprod_);
        std::vector<double> s;
        if (config_.use_karras_sigmas) {
            s = karras_sigmas(train.front(), train.back(), n);
            const std::vector<float> log_sigmas = log_sigmas_f32(train);
            t.clear();
            for (double sigma : s) {
                const double ti = sigma_to_t(sigma, log_sigmas);
                // The U-Net takes integer timesteps here, except for the cosine schedule.
                t.push_back(config_.beta_schedule == "squaredcos_cap_v2" ? ti : np_round(ti));
            }
        } else {
            s = np_interp(t, train);
        }
        s.push_back(0.0);  // final_sigmas_type "zero": the last step lands on the clean image
        sigmas_ = f32_tensor(s);
        timesteps_ = f64_tensor(t);
        prev_x0_ = torch::Tensor();
        lower_order_nums_ = 0;
    }

    double init_noise_sigma() const override { return 1.0; }
    torch::Tensor scale_model_input(const torch::Tensor& sample, int step_index) const override {
        check_step_index(step_index);
        return sample;  // works on the variance-preserving x_t directly
    }

    StepOutput step(const torch::Tensor& model_output, int i, const torch::Tensor& sample,
                    std::optional<torch::Generator>) override {
        check_step_index(i);
        const bool last = i == timesteps_.size(0) - 1;
        const AlphaSigma s0(sigma(i));
        const torch::Tensor x0 = convert_model_output(model_output, sample, s0);
        const torch::Tensor x = sample.to(torch::kFloat32);  // as diffusers, even for half precision

        const AlphaSigma st(sigma(i + 1));
        const float h = st.lambda - s0.lambda;
        const float phi = st.alpha * (std::exp(-h) - 1.0f);
        torch::Tensor prev;
        if (lower_order_nums_ < 1 || last) {
            // First order (= DDIM): x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) x0.
            prev = (st.sigma / s0.sigma) * x - phi * x0;
        } else {
            // D1 extrapolates x0 linearly in lambda from the previous step (r0 = h_prev / h).
            const AlphaSigma s1(sigma(i - 1));
            const float r0 = (s0.lambda - s1.lambda) / h;
            const torch::Tensor d1 = (1.0f / r0) * (x0 - prev_x0_);
            prev = (st.sigma / s0.sigma) * x - phi * x0 - (0.5f * phi) * d1;
        }
        prev_x0_ = x0;
        lower_order_nums_ = std::min(lower_order_nums_ + 1, 2);
        return {prev.to(model_output.scalar_type()), x0};
    }

    torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                            double timestep) const override {
        // diffusers falls back to the last step for a timestep not in the schedule.
        const int i = index_for_timestep(timesteps_, timestep).value_or(static_cast<int>(timesteps_.size(0)) - 1);
        const AlphaSigma a(sigma(i));
        return a.alpha * original + a.sigma * noise;
    }

private:
    float sigma(int i) const { return sigmas_.data_ptr<float>()[i]; }

    // Data prediction (the "++"): everything is turned into x0.
    torch::Tensor convert_model_output(const torch::Tensor& model_output, const torch::Tensor& sample,
                                       const AlphaSigma& s) const {
        if (config_.prediction_type == "epsilon")
            return (sample - s.sigma * model_output) / s.alpha;
        if (config_.prediction_type == "v_prediction")
            return s.alpha * sample - s.sigma * model_output;
        return model_output;
    }

    torch::Tensor prev_x0_;  // x0 of the previous step (diffusers' model_outputs[-2])
    int lower_order_nums_ = 0;
};

} // namespace

std::unique_ptr<Scheduler> make_dpmpp_2m(const SchedulerConfig& c) { return std::make_unique<DpmSolverPP2M>(c); }

} // namespace sdl::detail
