// Schedules against diffusers (tests/data/reference.json → "schedulers", lcm's from
// lcm_reference.json, made later with tools/make_lcm_reference.py), and single steps against
// the formulas of the papers, written out independently here (in float64 where that is possible).
#include "core/schedulers/scheduler.h"
#include "core/util/error.h"

#include <ATen/CPUGeneratorImpl.h>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <fstream>

namespace {

const nlohmann::json& reference() {
    static const nlohmann::json j = [] {
        std::ifstream in(SDLENS_TEST_DATA "/reference.json");
        nlohmann::json ref = nlohmann::json::parse(in);
        std::ifstream lcm(SDLENS_TEST_DATA "/lcm_reference.json");
        ref["schedulers"].update(nlohmann::json::parse(lcm)["schedulers"]);
        return ref;
    }();
    return j;
}

// Largest |got - want| / |want| (absolute where want is 0); sizes must agree.
double max_rel_error(const torch::Tensor& got, const nlohmann::json& want) {
    const torch::Tensor g = got.to(torch::kFloat64).contiguous();
    if (g.numel() != static_cast<int64_t>(want.size()))
        return INFINITY;
    double worst = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
        const double w = want[i].get<double>();
        const double d = std::abs(g.data_ptr<double>()[i] - w);
        worst = std::max(worst, w == 0 ? d : d / std::abs(w));
    }
    return worst;
}

double max_scaled_error(const torch::Tensor& got, const torch::Tensor& want) {
    return (got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs().max().item<double>() /
           want.abs().max().item<double>();
}

std::unique_ptr<sdl::Scheduler> make(const std::string& name, int steps) {
    auto s = sdl::make_scheduler(name, sdl::default_scheduler_config(name));
    s->set_timesteps(steps);
    return s;
}

template <typename F>
QString error_of(F&& f) {
    try {
        f();
    } catch (const sdl::Error& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

torch::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

} // namespace

class TestSchedulers : public QObject {
    Q_OBJECT
private slots:
    void schedulesMatchDiffusers_data() {
        QTest::addColumn<QString>("name");
        QTest::addColumn<int>("steps");
        for (const auto& n : sdl::scheduler_names())
            for (int steps : {50, 20, 7})
                QTest::newRow((n + "." + std::to_string(steps)).c_str()) << QString::fromStdString(n) << steps;
    }
    void schedulesMatchDiffusers() {
        QFETCH(QString, name);
        QFETCH(int, steps);
        const auto s = make(name.toStdString(), steps);
        const auto& ref = reference()["schedulers"][name.toStdString() + "." + std::to_string(steps)];
        const double t_err = max_rel_error(s->timesteps(), ref["timesteps"]);
        const double s_err = ref.contains("sigmas") ? max_rel_error(s->sigmas(), ref["sigmas"]) : 0.0;
        const double want_init = ref["init_noise_sigma"].get<double>();
        const double i_err = std::abs(s->init_noise_sigma() - want_init) / want_init;
        qInfo("%s.%d: max relative error timesteps %.3g, sigmas %.3g, init_noise_sigma %.3g",
              qPrintable(name), steps, t_err, s_err, i_err);
        QVERIFY(t_err <= 1e-5);
        QVERIFY(s_err <= 1e-5);
        QVERIFY(i_err <= 1e-5);
        if (!ref.contains("sigmas"))
            QCOMPARE(s->sigmas().numel(), 0);
    }

    void pndmRepeatsItsFirstStep() {
        // 8 steps: 9 U-Net calls, the second timestep twice (as the reference's 9 latents).
        const auto s = make("pndm", 8);
        QCOMPARE(s->timesteps().size(0), 9);
        const double* t = s->timesteps().data_ptr<double>();
        QCOMPARE(t[1], t[2]);
        // With the same noise estimate, the repeated step redoes step one from the same sample.
        const torch::Tensor x = torch::randn({1, 4, 8, 8}, seeded(1));
        const torch::Tensor eps = torch::randn({1, 4, 8, 8}, seeded(2));
        const auto first = s->step(eps, 0, x);
        const auto again = s->step(eps, 1, first.prev_sample);
        QVERIFY(torch::equal(first.prev_sample, again.prev_sample));
    }

    void pndmTransferEqualsDdimStep() {
        // Liu et al.'s transfer part (eq. 11) is the deterministic DDIM step written differently.
        const auto pndm = make("pndm", 10);
        const auto ddim = make("ddim", 10);
        QCOMPARE(pndm->timesteps()[0].item<double>(), ddim->timesteps()[0].item<double>());
        const torch::Tensor x = torch::randn({2, 4, 8, 8}, seeded(3));
        const torch::Tensor eps = torch::randn({2, 4, 8, 8}, seeded(4));
        const double err = max_scaled_error(pndm->step(eps, 0, x).prev_sample, ddim->step(eps, 0, x).prev_sample);
        QVERIFY2(err < 1e-5, qPrintable(QString::number(err)));
    }

    void ddimFollowsSongEtAl() {
        auto config = sdl::default_scheduler_config("ddim");
        for (double eta : {0.0, 1.0}) {
            config.eta = eta;
            const auto s = sdl::make_scheduler("ddim", config);
            s->set_timesteps(10);
            const torch::Tensor x = torch::randn({1, 4, 8, 8}, seeded(5));
            const torch::Tensor eps = torch::randn({1, 4, 8, 8}, seeded(6));
            const auto out = s->step(eps, 0, x, seeded(7));

            const int t = static_cast<int>(s->timesteps()[0].item<double>());
            const double a = s->alphas_cumprod()[t].item<double>();
            const double a_prev = s->alphas_cumprod()[t - 100].item<double>();
            const torch::Tensor x0 = (x - std::sqrt(1 - a) * eps) / std::sqrt(a);  // eq. 12, "predicted x0"
            const double sigma = eta * std::sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev));  // eq. 16
            torch::Tensor want = std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev - sigma * sigma) * eps;
            if (eta > 0)
                want = want + sigma * torch::randn({1, 4, 8, 8}, seeded(7));
            QVERIFY(max_scaled_error(out.pred_original_sample, x0) < 1e-5);
            QVERIFY(max_scaled_error(out.prev_sample, want) < 1e-5);
        }
    }

    void eulerIsExplicitEuler() {
        const auto s = make("euler", 20);
        const torch::Tensor x = torch::randn({1, 4, 8, 8}, seeded(8)) * s->init_noise_sigma();
        const torch::Tensor eps = torch::randn({1, 4, 8, 8}, seeded(9));
        const double s0 = s->sigmas()[0].item<double>(), s1 = s->sigmas()[1].item<double>();
        const auto out = s->step(eps, 0, x);
        QVERIFY(max_scaled_error(out.pred_original_sample, x - s0 * eps) < 1e-6);
        QVERIFY(max_scaled_error(out.prev_sample, x + (s1 - s0) * eps) < 1e-6);
        QVERIFY(max_scaled_error(s->scale_model_input(x, 0), x / std::sqrt(s0 * s0 + 1)) < 1e-6);
    }

    void eulerAncestralDrawsFromTheGenerator() {
        // sigma_up and sigma_down of k-diffusion's get_ancestral_step (eta 1); one draw per step.
        const auto s = make("euler_a", 8);
        torch::Generator gen = seeded(1234);
        torch::Generator check = seeded(1234);
        torch::Tensor x = torch::randn({1, 4, 16, 16}, check) * s->init_noise_sigma();
        QVERIFY(torch::equal(torch::randn({1, 4, 16, 16}, gen) * s->init_noise_sigma(), x));
        for (int i = 0; i < 2; ++i) {
            const torch::Tensor eps = torch::randn({1, 4, 16, 16}, seeded(10 + i));
            const double from = s->sigmas()[i].item<double>(), to = s->sigmas()[i + 1].item<double>();
            const double up = std::sqrt(to * to * (from * from - to * to) / (from * from));
            const double down = std::sqrt(to * to - up * up);
            const auto out = s->step(eps, i, x, gen);
            const torch::Tensor want = x + (down - from) * eps + up * torch::randn({1, 4, 16, 16}, check);
            QVERIFY(max_scaled_error(out.prev_sample, want) < 1e-5);
            x = out.prev_sample;
        }
    }

    void lmsIntegratesCubicDerivativesExactly() {
        // For epsilon prediction the ODE derivative (x - x0) / sigma is the model output; feed it a
        // cubic p(sigma). From the fourth step on, LMS (order 4) integrates p exactly, so each step
        // adds P(sigma_{i+1}) - P(sigma_i), P the antiderivative. In float64 to see the exactness.
        const auto p = [](double s) { return 1 + 2 * s - 0.5 * s * s + 0.1 * s * s * s; };
        const auto P = [](double s) { return s + s * s - s * s * s / 6 + 0.025 * s * s * s * s; };
        const auto s = make("lms", 10);
        for (int run = 0; run < 2; ++run) {  // a second run after set_timesteps starts afresh
            s->set_timesteps(10);
            torch::Tensor x = torch::zeros({1}, torch::kFloat64);
            for (int i = 0; i < 6; ++i) {
                const double si = s->sigmas()[i].item<double>(), sn = s->sigmas()[i + 1].item<double>();
                const torch::Tensor next = s->step(torch::full({1}, p(si), torch::kFloat64), i, x).prev_sample;
                const double got = (next - x).item<double>();
                if (i == 0)  // order 1: an Euler step
                    QVERIFY(std::abs(got - p(si) * (sn - si)) <= 1e-12 * std::abs(got));
                if (i >= 3) {
                    const double want = P(sn) - P(si);
                    QVERIFY2(std::abs(got - want) <= 1e-10 * std::abs(want),
                             qPrintable(QString("step %1: %2 vs %3").arg(i).arg(got, 0, 'g', 17).arg(want, 0, 'g', 17)));
                }
                x = next;
            }
        }
    }

    void dpmSolverFollowsLuEtAl() {
        // DPM-Solver++(2M), Algorithm 2 of Lu et al. 2022, in float64: a first-order first step, then
        // x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) ((1 + 1/(2r)) x0_s - 1/(2r) x0_prev).
        const auto s = make("dpmpp_2m", 10);
        const auto vp = [&](int i) {
            const double sig = s->sigmas()[i].item<double>();
            const double alpha = 1 / std::sqrt(sig * sig + 1);
            return std::array<double, 3>{alpha, sig * alpha, std::log(alpha) - std::log(sig * alpha)};
        };
        torch::Tensor x = torch::randn({1, 4, 8, 8}, seeded(11));
        torch::Tensor prev_x0;
        for (int i = 0; i < 3; ++i) {
            const torch::Tensor eps = torch::randn({1, 4, 8, 8}, seeded(20 + i));
            const auto [a_s, s_s, l_s] = vp(i);
            const auto [a_t, s_t, l_t] = vp(i + 1);
            const torch::Tensor x0 = (x - s_s * eps) / a_s;
            const double h = l_t - l_s;
            torch::Tensor d = x0;
            if (i > 0) {
                const double r = (l_s - vp(i - 1)[2]) / h;
                d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * prev_x0;
            }
            const torch::Tensor want = (s_t / s_s) * x - a_t * (std::exp(-h) - 1) * d;
            const auto out = s->step(eps, i, x);
            QVERIFY(max_scaled_error(out.pred_original_sample, x0) < 1e-5);
            QVERIFY2(max_scaled_error(out.prev_sample, want) < 1e-5, qPrintable(QString("step %1").arg(i)));
            prev_x0 = x0;
            x = out.prev_sample;
        }
        // The last step lands on sigma 0: the sample becomes the predicted x0.
        const auto last = s->step(torch::randn({1, 4, 8, 8}, seeded(30)), 9, x);
        QVERIFY(max_scaled_error(last.prev_sample, last.pred_original_sample) < 1e-6);
    }

    void predictionTypesRecoverX0_data() {
        QTest::addColumn<QString>("name");
        for (const auto& n : sdl::scheduler_names())
            QTest::newRow(n.c_str()) << QString::fromStdString(n);
    }
    void predictionTypesRecoverX0() {
        // Build x_t from a known x0 and eps, give the scheduler the exact eps, v (Salimans & Ho 2022:
        // v = alpha eps - sigma x0 in variance-preserving terms) or x0: its predicted x0 must be x0.
        const std::string name = QTest::currentDataTag();
        const torch::Tensor x0 = torch::randn({1, 4, 8, 8}, seeded(40));
        const torch::Tensor eps = torch::randn({1, 4, 8, 8}, seeded(41));
        for (const std::string type : {"epsilon", "v_prediction", "sample"}) {
            if (name == "pndm" && type == "sample")
                continue;  // not offered by diffusers' PNDM
            auto config = sdl::default_scheduler_config(name);
            config.prediction_type = type;
            const auto s = sdl::make_scheduler(name, config);
            s->set_timesteps(10);
            const int i = 3;
            double alpha, sigma;
            if (s->sigmas().numel() > 0) {
                const double k = s->sigmas()[i].item<double>();
                alpha = 1 / std::sqrt(k * k + 1);
                sigma = k * alpha;
            } else {
                const double a = s->alphas_cumprod()[static_cast<int>(s->timesteps()[i].item<double>())].item<double>();
                alpha = std::sqrt(a);
                sigma = std::sqrt(1 - a);
            }
            const torch::Tensor vp_x = alpha * x0 + sigma * eps;  // what the U-Net sees
            // Sigma schedulers carry x = vp_x / alpha and scale it back in scale_model_input;
            // DPM++ works on vp_x directly.
            const bool k_diffusion = s->sigmas().numel() > 0 && name != "dpmpp_2m";
            const torch::Tensor x = k_diffusion ? vp_x / alpha : vp_x;
            const torch::Tensor out = type == "epsilon" ? eps : type == "sample" ? x0 : alpha * eps - sigma * x0;
            const double err = max_scaled_error(s->step(out, i, x).pred_original_sample, x0);
            QVERIFY2(err < 1e-4, qPrintable(QString::fromStdString(type) + ": " + QString::number(err)));
        }
    }

    void trailingAndLinspaceSpacing() {
        // diffusers: np.round(np.arange(1000, 0, -1000 / 7)) - 1 and np.linspace(0, 999, 7).round().
        auto config = sdl::default_scheduler_config("ddim");
        config.timestep_spacing = "trailing";
        auto s = sdl::make_scheduler("ddim", config);
        s->set_timesteps(7);
        const std::vector<double> trailing{999, 856, 713, 570, 428, 285, 142};
        QCOMPARE(std::vector<double>(s->timesteps().data_ptr<double>(), s->timesteps().data_ptr<double>() + 7), trailing);
        config.timestep_spacing = "linspace";
        s = sdl::make_scheduler("ddim", config);
        s->set_timesteps(7);
        const std::vector<double> linspace{999, 832, 666, 500, 333, 166, 0};  // 499.5 rounds to even
        QCOMPARE(std::vector<double>(s->timesteps().data_ptr<double>(), s->timesteps().data_ptr<double>() + 7), linspace);
        // 61 steps: numpy's arange gives 62 values here; we keep 61, all valid timesteps.
        config.timestep_spacing = "trailing";
        s = sdl::make_scheduler("euler", config);
        s->set_timesteps(61);
        QCOMPARE(s->timesteps().size(0), 61);
        QVERIFY(s->timesteps().min().item<double>() >= 0);
    }

    void modelConfigOverridesDefaults() {
        // tiny-sd ships SD 1.x's PNDM config: leading spacing, steps_offset 1. Used for LMS (as
        // diffusers' from_config does), the start is then sqrt(sigma_max^2 + 1) at timestep 981.
        const auto c = sdl::SchedulerConfig::from_file(SDLENS_TEST_DATA "/tiny-sd/scheduler/scheduler_config.json",
                                                       sdl::default_scheduler_config("lms"));
        QCOMPARE(QString::fromStdString(c.timestep_spacing), QString("leading"));
        QCOMPARE(c.steps_offset, 1);
        QVERIFY(c.skip_prk_steps && !c.set_alpha_to_one);
        const auto s = sdl::make_scheduler("lms", c);
        s->set_timesteps(50);
        QCOMPARE(s->timesteps()[0].item<double>(), 981.0);
        const double smax = s->sigmas().max().item<double>();
        QVERIFY(std::abs(s->init_noise_sigma() - std::sqrt(smax * smax + 1)) < 1e-5);
        QCOMPARE(sdl::SchedulerConfig::from_json(c.to_json()).to_json(), c.to_json());
    }

    void badConfigsNameTheValue() {
        const auto bad = [](const nlohmann::json& j) { return error_of([&] { sdl::SchedulerConfig::from_json(j); }); };
        QString e = bad({{"beta_schedule", "cosine"}});
        QVERIFY2(e.contains("'cosine'") && e.contains("scaled_linear") && e.contains("squaredcos_cap_v2"), qPrintable(e));
        e = bad({{"timestep_spacing", "even"}});
        QVERIFY2(e.contains("'even'") && e.contains("trailing"), qPrintable(e));
        e = bad({{"prediction_type", "x0"}});
        QVERIFY2(e.contains("'x0'") && e.contains("v_prediction"), qPrintable(e));
        e = bad({{"beta_start", "small"}});
        QVERIFY2(e.contains("beta_start"), qPrintable(e));
        e = error_of([] { sdl::make_scheduler("heun", sdl::SchedulerConfig{}); });
        QVERIFY2(e.contains("'heun'") && e.contains("euler_a") && e.contains("dpmpp_2m"), qPrintable(e));
        QVERIFY(!error_of([] { sdl::default_scheduler_config("heun"); }).isEmpty());
        e = error_of([] { sdl::SchedulerConfig::from_file("/no/such/scheduler_config.json"); });
        QVERIFY2(e.contains("/no/such/scheduler_config.json"), qPrintable(e));
    }

    void misuseIsAnError() {
        auto s = sdl::make_scheduler("euler", sdl::default_scheduler_config("euler"));
        const torch::Tensor x = torch::zeros({1, 4, 2, 2});
        QVERIFY(!error_of([&] { s->step(x, 0, x); }).isEmpty());  // before set_timesteps
        QVERIFY(!error_of([&] { s->set_timesteps(0); }).isEmpty());
        s->set_timesteps(5);
        QVERIFY(error_of([&] { s->step(x, 5, x); }).contains("5"));
        QVERIFY(error_of([&] { s->add_noise(x, x, 123.25); }).contains("123.25"));
        const auto ddim = make("ddim", 5);
        QVERIFY(!error_of([&] { ddim->add_noise(x, x, 1000); }).isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestSchedulers)
#include "test_schedulers.moc"
