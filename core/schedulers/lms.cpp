// LMSDiscreteScheduler: the linear multistep method of Karras et al. 2022 (k-diffusion's sample_lms)
// on the probability-flow ODE dx/dsigma = (x - x0) / sigma. Each step integrates the Lagrange
// polynomial through the last (up to 4) derivatives over [sigma_i, sigma_{i+1}].
#include "core/schedulers/schedule_math.h"

#include <algorithm>
#include <deque>

namespace sdl::detail {
namespace {

// Coefficients of prod_k (tau - nodes[k]) / (nodes[j] - nodes[k]) over k != j, lowest power first.
std::vector<double> lagrange_basis(const std::vector<double>& nodes, size_t j) {
    std::vector<double> poly{1.0};
    for (size_t k = 0; k < nodes.size(); ++k) {
        if (k == j)
            continue;
        const double denom = nodes[j] - nodes[k];
        std::vector<double> next(poly.size() + 1, 0.0);
        for (size_t p = 0; p < poly.size(); ++p) {
            next[p + 1] += poly[p] / denom;
            next[p] -= poly[p] * nodes[k] / denom;
        }
        poly = std::move(next);
    }
    return poly;
}

// Exact integral of a polynomial over [a, b] (diffusers approximates it with scipy's quad).
double integrate(const std::vector<double>& poly, double a, double b) {
    double sum = 0.0;
    double pa = a, pb = b;  // a^(p+1), b^(p+1)
    for (size_t p = 0; p < poly.size(); ++p) {
        sum += poly[p] * (pb - pa) / static_cast<double>(p + 1);
        pa *= a;
        pb *= b;
    }
    return sum;
}

class Lms final : public SigmaScheduler {
public:
    explicit Lms(SchedulerConfig c) : SigmaScheduler(std::move(c)) {}
    std::string name() const override { return "lms"; }

    StepOutput step(const torch::Tensor& model_output, int i, const torch::Tensor& sample,
                    std::optional<torch::Generator>) override {
        check_step_index(i);
        const float s = sigma(i);
        torch::Tensor x0 = sigma_pred_x0(config_.prediction_type, model_output, sample, s);
        derivatives_.push_back((sample - x0) / s);
        if (derivatives_.size() > kOrder)
            derivatives_.pop_front();

        // Nodes sigma_i, sigma_{i-1}, ...: the order follows the step index, as in diffusers. A run
        // started part-way (img2img) has fewer derivatives than nodes; like diffusers' zip() we then
        // use only the newest ones.
        const size_t order = std::min<size_t>(static_cast<size_t>(i) + 1, kOrder);
        std::vector<double> nodes;
        for (size_t k = 0; k < order; ++k)
            nodes.push_back(sigma(i - static_cast<int>(k)));
        torch::Tensor sum;
        for (size_t j = 0; j < std::min(order, derivatives_.size()); ++j) {
            const double coeff = integrate(lagrange_basis(nodes, j), sigma(i), sigma(i + 1));
            const torch::Tensor term = coeff * derivatives_[derivatives_.size() - 1 - j];
            sum = sum.defined() ? sum + term : term;
        }
        return {sample + sum, x0};
    }

private:
    static constexpr size_t kOrder = 4;
    void reset_history() override { derivatives_.clear(); }
    std::deque<torch::Tensor> derivatives_;  // newest last
};

} // namespace

std::unique_ptr<Scheduler> make_lms(const SchedulerConfig& c) { return std::make_unique<Lms>(c); }

} // namespace sdl::detail
