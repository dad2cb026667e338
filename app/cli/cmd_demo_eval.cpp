// sdlens-cli demo-eval --model DIR [--seeds N] [--steps N] [--guidance G] [--scheduler NAME]
//                      [--vae-images K] [--sheet FILE.png] [--device D] [--dtype T] [--threads N]
// Issue 15's quality figures for a demo model (core/demo/demo_eval.h): colour and shape accuracy of
// images generated for every caption, the shape word's cross-attention on the shape against off it,
// the VAE's PSNR on toy-world pictures. One JSON object on stdout; --sheet writes the generated images
// as a contact sheet (rows = captions, columns = seeds).
#include "app/cli/command.h"
#include "app/cli/runtime_flags.h"
#include "core/demo/demo_eval.h"
#include "core/pipeline/image_tensor.h"
#include "core/util/image_io.h"

#include <cstdio>
#include <unistd.h>

namespace sdl::cli {
namespace {

int run_demo_eval(Args& args) {
    DemoEvalOptions o;
    const std::string model = args.required("--model");
    o.seeds = args.get_int("--seeds", o.seeds);
    o.steps = args.get_int("--steps", o.steps);
    o.guidance = args.get_double("--guidance", o.guidance);
    o.scheduler = args.get_or("--scheduler", o.scheduler);
    o.vae_images = args.get_int("--vae-images", o.vae_images);
    const auto sheet = args.get("--sheet");
    o.keep_images = sheet.has_value();
    const RuntimeOptions runtime = runtime_options(args);
    args.finish();
    check_demo_eval_options(o);

    auto sd = StableDiffusion::load(model, runtime);
    print_load_warnings(*sd);
    const bool tty = isatty(fileno(stderr)) != 0;
    const DemoEvalResult result = evaluate_demo(*sd, o, [&](const std::string& stage, int done, int total) {
        if (!tty && done != total)
            return;
        std::fprintf(stderr, "\r%-8s %d/%d ", stage.c_str(), done, total);
        if (done == total || !tty)
            std::fputc('\n', stderr);
        std::fflush(stderr);
    });
    auto out = demo_eval_json(result, o);
    out["settings"]["model"] = model;
    out["settings"]["precision"] = sd->info().precision.summary();
    out["settings"]["threads"] = at::get_num_threads();
    if (sheet) {
        write_png(*sheet, tensor_to_image(demo_contact_sheet(result)));
        out["sheet"] = *sheet;
    }
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    return 0;
}

const Register reg{"demo-eval",
                   "Measure a demo model: colour/shape accuracy, cross-attention on the shape, VAE PSNR "
                   "(--model DIR [--seeds N] [--steps N] [--guidance G] [--scheduler NAME] [--vae-images K] "
                   "[--sheet FILE.png] [--threads N])",
                   {},
                   run_demo_eval};

} // namespace
} // namespace sdl::cli
