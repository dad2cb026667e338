// EulerAncestralDiscreteScheduler: k-diffusion's sample_euler_ancestral. Each step goes
// deterministically down to sigma_down, then adds fresh noise of std sigma_up so that the marginal
// variance lands on sigma_{i+1}^2 = sigma_down^2 + sigma_up^2 (eta = 1).
#include "core/schedulers/schedule_math.h"

#include <cmath>

namespace sdl::detail {
namespace {

class EulerAncestral final : public SigmaScheduler {
public:
    explicit EulerAncestral(SchedulerConfig c) : SigmaScheduler(std::move(c)) {}
    std::string name() const override { return "euler_a"; }

    StepOutput step(const torch::Tensor& model_output, int i, const torch::Tensor& sample,
                    std::optional<torch::Generator> generator) override {
        check_step_index(i);
        // As diffusers: the update runs in float32 even for a half-precision model.
        const torch::Tensor x = sample.to(torch::kFloat32);
        const float s = sigma(i);
        torch::Tensor x0 = sigma_pred_x0(config_.prediction_type, model_output, x, s);

        const float from = sigma(i), to = sigma(i + 1);
        const float sigma_up = std::sqrt(to * to * (from * from - to * to) / (from * from));
        const float sigma_down = std::sqrt(to * to - sigma_up * sigma_up);
        const torch::Tensor derivative = (x - x0) / s;
        const float dt = sigma_down - s;
        torch::Tensor prev = x + derivative * dt;
        // Drawn on every step, the last one (sigma_up = 0) included, so the generator advances as
        // diffusers' does and a seeded run reproduces it.
        const torch::Tensor noise = randn_like_diffusers(model_output, generator);
        prev = prev + noise * sigma_up;
        return {prev.to(model_output.scalar_type()), x0};
    }
};

} // namespace

std::unique_ptr<Scheduler> make_euler_ancestral(const SchedulerConfig& c) {
    return std::make_unique<EulerAncestral>(c);
}

} // namespace sdl::detail
