// sdlens-cli train-demo --out DIR [--steps N] [--vae-steps N] [--seed S] [--batch N] [--vae-batch N]
//                       [--latent-pool N] [--threads N]
// Trains the demo model on the toy world (core/demo/demo_trainer.h): a progress line on stderr, the
// loss log in DIR/train_log.jsonl, a JSON summary on stdout. `make-model --preset demo --weights DIR`
// then writes the result as a diffusers folder.
#include "app/cli/command.h"
#include "core/demo/demo_trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <thread>

namespace {

int run_train_demo(sdl::cli::Args& args) {
    sdl::DemoTrainOptions o;
    o.out = args.required("--out");
    o.unet_steps = args.get_int("--steps", o.unet_steps);
    o.vae_steps = args.get_int("--vae-steps", o.vae_steps);
    o.seed = static_cast<uint64_t>(args.get_int("--seed", 0));
    o.latent_pool = args.get_int("--latent-pool", o.latent_pool);
    o.unet_batch = args.get_int("--batch", o.unet_batch);
    o.vae_batch = args.get_int("--vae-batch", o.vae_batch);
    const int threads = args.get_int("--threads", 0);
    args.finish();
    at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

    const bool tty = isatty(fileno(stderr));
    const auto result = sdl::train_demo(o, [&](const sdl::DemoTrainProgress& p) {
        if (!tty && p.step != p.steps && p.step % 100 != 0)
            return;
        constexpr int kWidth = 30;
        const int filled = p.steps ? kWidth * p.step / p.steps : 0;
        std::fprintf(stderr, "\r%-6s [%s%s] %d/%d  loss %.4f  %.0f s ", p.phase.c_str(), std::string(filled, '#').c_str(),
                     std::string(kWidth - filled, '.').c_str(), p.step, p.steps, p.loss, p.seconds);
        if (p.step == p.steps || !tty)
            std::fputc('\n', stderr);
    });
    std::cout << nlohmann::json{{"out", o.out},
                                {"vae_loss", result.vae_loss},
                                {"unet_loss", result.unet_loss},
                                {"scaling_factor", result.scaling_factor},
                                {"threads", at::get_num_threads()},
                                {"seconds", std::round(result.seconds)}}
                     .dump()
              << '\n';
    return 0;
}

sdl::cli::Register reg{"train-demo",
                       "Train the demo model on the toy world (--out DIR [--steps N] [--vae-steps N] [--seed S] "
                       "[--batch N] [--vae-batch N] [--latent-pool N] [--threads N])",
                       {},
                       run_train_demo};

} // namespace
