#include "core/schedulers/schedule_math.h"

#include "core/util/error.h"

#include <algorithm>
#include <cmath>

namespace sdl::detail {

std::vector<double> np_linspace(double start, double stop, int num) {
    std::vector<double> y(static_cast<size_t>(num));
    if (num == 1) {
        y[0] = start;
        return y;
    }
    const double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; ++i)
        y[i] = i * step + start;
    y.back() = stop;
    return y;
}

double np_round(double x) { return std::nearbyint(x); }  // default rounding mode: to nearest, ties to even

std::vector<double> np_arange_down(double start, double step, int n) {
    std::vector<double> y(static_cast<size_t>(n));
    y[0] = start;
    if (n > 1)
        y[1] = start - step;
    const double delta = y.size() > 1 ? y[1] - y[0] : 0.0;
    for (int i = 2; i < n; ++i)
        y[i] = start + i * delta;
    return y;
}

std::vector<double> np_interp(const std::vector<double>& x, const std::vector<double>& fp) {
    const int last = static_cast<int>(fp.size()) - 1;
    std::vector<double> out;
    out.reserve(x.size());
    for (double v : x) {
        if (v <= 0) {
            out.push_back(fp.front());
        } else if (v >= last) {
            out.push_back(fp.back());
        } else {
            const int j = static_cast<int>(std::floor(v));
            if (v == j) {
                out.push_back(fp[j]);
            } else {
                const double slope = fp[j + 1] - fp[j];  // the abscissae are 0, 1, 2, ...
                out.push_back(slope * (v - j) + fp[j]);
            }
        }
    }
    return out;
}

std::vector<double> training_sigmas(const torch::Tensor& alphas_cumprod) {
    const torch::Tensor s = ((1 - alphas_cumprod) / alphas_cumprod).pow(0.5).contiguous();
    const float* p = s.data_ptr<float>();
    return std::vector<double>(p, p + s.numel());
}

std::vector<float> log_sigmas_f32(const std::vector<double>& sigmas) {
    std::vector<float> out;
    out.reserve(sigmas.size());
    for (double s : sigmas)
        out.push_back(std::log(static_cast<float>(s)));
    return out;
}

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n) {
    const double rho = 7.0;
    const double min_inv_rho = std::pow(sigma_min, 1 / rho);
    const double max_inv_rho = std::pow(sigma_max, 1 / rho);
    std::vector<double> out;
    for (double r : np_linspace(0, 1, n))
        out.push_back(std::pow(max_inv_rho + r * (min_inv_rho - max_inv_rho), rho));
    return out;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
    const double log_sigma = std::log(std::max(sigma, 1e-10));
    // The last training index whose log-sigma is <= ours (0 if none), kept below the end.
    int low = 0;
    for (int i = 0; i < static_cast<int>(log_sigmas.size()); ++i)
        if (log_sigma - log_sigmas[i] >= 0)
            low = i;
    low = std::min(low, static_cast<int>(log_sigmas.size()) - 2);
    const int high = low + 1;
    const float lo = log_sigmas[low];
    const float hi = log_sigmas[high];
    const float span = lo - hi;  // float32 in numpy too
    const double w = std::clamp((lo - log_sigma) / span, 0.0, 1.0);
    return (1 - w) * low + w * high;
}

std::vector<int64_t> ddpm_timesteps(const SchedulerConfig& c, int n) {
    const int N = c.num_train_timesteps;
    std::vector<int64_t> t;
    if (c.timestep_spacing == "linspace") {
        for (double v : np_linspace(0, N - 1, n))
            t.push_back(static_cast<int64_t>(np_round(v)));
        std::reverse(t.begin(), t.end());
    } else if (c.timestep_spacing == "leading") {
        const int ratio = N / n;
        for (int i = n - 1; i >= 0; --i)
            t.push_back(static_cast<int64_t>(i) * ratio + c.steps_offset);
    } else {  // trailing
        for (double v : np_arange_down(N, static_cast<double>(N) / n, n))
            t.push_back(static_cast<int64_t>(np_round(v)) - 1);
    }
    // Leading spacing with steps_offset can pass the last training timestep (1000 steps, offset 1).
    if (t.front() >= N)
        throw Error(std::to_string(n) + " steps with steps_offset " + std::to_string(c.steps_offset) +
                    " reach timestep " + std::to_string(t.front()) + ", past the last training timestep " +
                    std::to_string(N - 1) + "; use fewer steps");
    return t;
}

std::vector<double> sigma_timesteps(const SchedulerConfig& c, int n) {
    const int N = c.num_train_timesteps;
    std::vector<double> t;
    if (c.timestep_spacing == "linspace") {
        // np.linspace(..., dtype=np.float32): computed in float64, stored as float32.
        for (double v : np_linspace(0, N - 1, n))
            t.push_back(static_cast<float>(v));
        std::reverse(t.begin(), t.end());
    } else if (c.timestep_spacing == "leading") {
        const int ratio = N / n;
        for (int i = n - 1; i >= 0; --i)
            t.push_back(static_cast<float>(i * ratio) + static_cast<float>(c.steps_offset));
    } else {  // trailing
        for (double v : np_arange_down(N, static_cast<double>(N) / n, n))
            t.push_back(static_cast<float>(np_round(v)) - 1.0f);
    }
    return t;
}

std::optional<int> index_for_timestep(const torch::Tensor& timesteps, double t) {
    const double* p = timesteps.data_ptr<double>();
    std::vector<int> hits;
    for (int i = 0; i < timesteps.size(0); ++i)
        if (p[i] == t)
            hits.push_back(i);
    if (hits.empty())
        return std::nullopt;
    return hits.size() > 1 ? hits[1] : hits[0];
}

torch::Tensor f64_tensor(const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat64);
}

torch::Tensor f32_tensor(const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat64).to(torch::kFloat32);
}

torch::Tensor randn_like_diffusers(const torch::Tensor& like, std::optional<torch::Generator>& generator) {
    const auto opts = torch::TensorOptions().dtype(like.dtype());
    if (!generator)
        return torch::randn(like.sizes(), opts.device(like.device()));
    return torch::randn(like.sizes(), *generator, opts.device(generator->device())).to(like.device());
}

torch::Tensor sigma_pred_x0(const std::string& prediction_type, const torch::Tensor& model_output,
                            const torch::Tensor& sample, float sigma) {
    if (prediction_type == "epsilon")
        return sample - sigma * model_output;
    if (prediction_type == "v_prediction") {
        // Salimans & Ho 2022 with the input scaled by 1 / sqrt(sigma^2 + 1): x0 = c_out * v + c_skip * x.
        const float var = sigma * sigma + 1.0f;
        return model_output * (-sigma / std::sqrt(var)) + sample / var;
    }
    return model_output;  // "sample": the model predicts x0 itself
}

torch::Tensor ddpm_add_noise(const std::string& who, const torch::Tensor& alphas_cumprod,
                             const torch::Tensor& original, const torch::Tensor& noise, double timestep) {
    const int64_t n = alphas_cumprod.size(0);
    if (timestep != std::floor(timestep) || timestep < 0 || timestep >= static_cast<double>(n))
        throw Error(who + ": add_noise needs an integer training timestep in [0, " + std::to_string(n) +
                    "), found " + std::to_string(timestep));
    const float a = alphas_cumprod.data_ptr<float>()[static_cast<int64_t>(timestep)];
    return std::sqrt(a) * original + std::sqrt(1 - a) * noise;
}

void SigmaScheduler::set_timesteps(int n) {
    check_steps(n);
    std::vector<double> t = sigma_timesteps(config_, n);
    const std::vector<double> train = training_sigmas(alphas_cumprod_);
    std::vector<double> s = np_interp(t, train);
    if (config_.use_karras_sigmas) {
        s = karras_sigmas(s.back(), s.front(), n);
        const std::vector<float> log_sigmas = log_sigmas_f32(train);
        for (size_t i = 0; i < s.size(); ++i)
            t[i] = static_cast<float>(sigma_to_t(s[i], log_sigmas));
    }
    s.push_back(0.0);
    sigmas_ = f32_tensor(s);
    timesteps_ = f64_tensor(t);
    reset_history();
}

double SigmaScheduler::init_noise_sigma() const {
    const float max_sigma = sigmas_.max().item<float>();
    // With leading spacing the first timestep is below the last training one, so diffusers treats
    // the start as sigma_max plus unit-variance data.
    if (config_.timestep_spacing == "leading")
        return std::sqrt(max_sigma * max_sigma + 1.0f);
    return max_sigma;
}

torch::Tensor SigmaScheduler::scale_model_input(const torch::Tensor& sample, int step_index) const {
    check_step_index(step_index);
    // The U-Net was trained on unit-variance inputs: x = x0 + sigma * eps has variance sigma^2 + 1.
    const float s = sigma(step_index);
    return sample / std::sqrt(s * s + 1.0f);
}

torch::Tensor SigmaScheduler::add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                                        double timestep) const {
    const auto i = index_for_timestep(timesteps_, timestep);
    if (!i)
        throw Error(name() + ": timestep " + std::to_string(timestep) +
                    " is not in the schedule (add_noise takes one of timesteps())");
    return original + noise * sigma(*i);
}

} // namespace sdl::detail
