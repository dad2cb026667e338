// EulerDiscreteScheduler: Euler's method on the probability-flow ODE dx/dsigma = (x - x0) / sigma
// (Karras et al. 2022, Algorithm 1 without the second-order correction; s_churn = 0, so no noise).
#include "core/schedulers/schedule_math.h"

namespace sdl::detail {
namespace {

class Euler final : public SigmaScheduler {
public:
    explicit Euler(SchedulerConfig c) : SigmaScheduler(std::move(c)) {}
    std::string name() const override { return "euler"; }

    StepOutput step(const torch::Tensor& model_output, int i, const torch::Tensor& sample,
                    std::optional<torch::Generator>) override {
        check_step_index(i);
        // As diffusers: the update runs in float32 even for a half-precision model.
        const torch::Tensor x = sample.to(torch::kFloat32);
        const float s = sigma(i);
        torch::Tensor x0 = sigma_pred_x0(config_.prediction_type, model_output, x, s);
        const torch::Tensor derivative = (x - x0) / s;
        const float dt = sigma(i + 1) - s;
        return {(x + derivative * dt).to(model_output.scalar_type()), x0};
    }
};

} // namespace

std::unique_ptr<Scheduler> make_euler(const SchedulerConfig& c) { return std::make_unique<Euler>(c); }

} // namespace sdl::detail
