#pragma once
// Internal to core/schedulers: the numpy and torch arithmetic diffusers builds its schedules with,
// reproduced step for step (numpy's linspace, arange, round and interp; float32 where diffusers
// is float32), so timesteps and sigmas come out bit-for-bit or within an ulp.
#include "core/schedulers/scheduler.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace sdl::detail {

// np.linspace(start, stop, num): start + i * ((stop - start) / (num - 1)), the last one exactly stop.
std::vector<double> np_linspace(double start, double stop, int num);
// np.round: halves go to the even neighbour.
double np_round(double x);
// np.arange(start, 0, -step) for a fractional step, as numpy fills it (start + i * (second - first)).
// numpy's length ceil(start / step) can exceed n by one through rounding (1000 / (1000 / 61) > 61),
// which gives diffusers a negative last timestep; we keep the n entries that were asked for.
std::vector<double> np_arange_down(double start, double step, int n);
// np.interp(x, arange(len(fp)), fp).
std::vector<double> np_interp(const std::vector<double>& x, const std::vector<double>& fp);

// ((1 - acp) / acp) ** 0.5 in float32 torch arithmetic, as every diffusers scheduler computes it.
std::vector<double> training_sigmas(const torch::Tensor& alphas_cumprod);
// np.log of those float32 sigmas (a float32 result), the table sigma_to_t interpolates in.
std::vector<float> log_sigmas_f32(const std::vector<double>& sigmas);
// Karras et al. 2022 (EDM), eq. 5 with rho = 7: n sigmas from sigma_max down to sigma_min.
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n);
// Fractional training timestep whose log-sigma is `sigma`'s, by linear interpolation in log sigma.
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);

// Descending training timesteps for PNDM and DDIM (integers): linspace rounded, leading
// (multiples of N // n plus steps_offset) or trailing.
std::vector<int64_t> ddpm_timesteps(const SchedulerConfig& c, int n);
// Descending timesteps of LMS, Euler and Euler ancestral, rounded to float32 as diffusers stores them.
std::vector<double> sigma_timesteps(const SchedulerConfig& c, int n);

// Index of `t` in `timesteps`, the second one when it occurs twice (diffusers' index_for_timestep:
// starting mid-schedule must not skip a sigma). nullopt when absent.
std::optional<int> index_for_timestep(const torch::Tensor& timesteps, double t);

torch::Tensor f64_tensor(const std::vector<double>& v);
torch::Tensor f32_tensor(const std::vector<double>& v);  // rounds each value to float32

// Gaussian noise shaped and typed like `like`, drawn as diffusers' randn_tensor does: on the
// generator's device (a CPU generator for a CUDA tensor draws on the CPU, then moves).
torch::Tensor randn_like_diffusers(const torch::Tensor& like, std::optional<torch::Generator>& generator);

// x0 from the model output at noise level sigma for the k-diffusion parameterisation
// x = x0 + sigma * eps (epsilon, v_prediction, sample), with diffusers' float32 coefficients.
torch::Tensor sigma_pred_x0(const std::string& prediction_type, const torch::Tensor& model_output,
                            const torch::Tensor& sample, float sigma);

// Ho et al. 2020, eq. 4: sqrt(acp_t) x0 + sqrt(1 - acp_t) noise at an integer training timestep
// (anything else is an sdl::Error naming `who`).
torch::Tensor ddpm_add_noise(const std::string& who, const torch::Tensor& alphas_cumprod,
                             const torch::Tensor& original, const torch::Tensor& noise, double timestep);

// Shared by LMS, Euler and Euler ancestral: diffusers builds their sigmas identically.
class SigmaScheduler : public Scheduler {
public:
    void set_timesteps(int num_inference_steps) override;
    double init_noise_sigma() const override;
    torch::Tensor scale_model_input(const torch::Tensor& sample, int step_index) const override;
    torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                            double timestep) const override;

protected:
    explicit SigmaScheduler(SchedulerConfig c) : Scheduler(std::move(c)) {}
    virtual void reset_history() {}
    float sigma(int i) const { return sigmas_.data_ptr<float>()[i]; }
};

// One per file; make_scheduler dispatches on the name.
std::unique_ptr<Scheduler> make_lms(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_pndm(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_ddim(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_euler(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_euler_ancestral(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_dpmpp_2m(const SchedulerConfig& c);
std::unique_ptr<Scheduler> make_lcm(const SchedulerConfig& c);

} // namespace sdl::detail
