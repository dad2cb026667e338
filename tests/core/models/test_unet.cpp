#include "core/models/unet_2d_condition.h"
#include "core/models/layers.h"
#include "core/models/load.h"
#include "core/models/weights.h"
#include "model_test_util.h"

#include <QtTest>

using namespace sdl_test;

class TestUNet : public QObject {
    Q_OBJECT

    static sdl::UNet2DConditionModel load(bool single_file, torch::Dtype dtype) {
        return sdl::load_unet(tiny(single_file).unet, dtype, torch::kCPU);
    }

    static void parity(bool single_file) {
        torch::NoGradGuard g;
        auto m = load(single_file, torch::kFloat);
        const auto x = reference("unet.sample"), ctx = reference("unet.context");
        const double e981 = max_abs(m->forward(x, 981, ctx), reference("unet.out_t981"));
        const double e1 = max_abs(m->forward(x, torch::tensor(int64_t(1)), ctx), reference("unet.out_t1"));
        const double evec = max_abs(m->forward(x, reference("unet.timesteps_vec"), ctx), reference("unet.out_tvec"));
        qInfo("%s: out_t981 %.3g, out_t1 %.3g, out_tvec %.3g", single_file ? "single file" : "folder", e981, e1, evec);
        QVERIFY(e981 <= 1e-4);
        QVERIFY(e1 <= 1e-4);
        QVERIFY(evec <= 1e-4);
    }

private slots:
    void parityFromFolder() { parity(false); }
    void parityFromSingleFile() { parity(true); }

    void timestepForms() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto x = reference("unet.sample"), ctx = reference("unet.context");
        const auto ref = reference("unet.out_t981");
        QVERIFY(max_abs(m->forward(x, torch::tensor(981.0f), ctx), ref) <= 1e-4);                // 0-dim float
        QVERIFY(max_abs(m->forward(x, torch::tensor({int64_t(981)}), ctx), ref) <= 1e-4);        // [1] int
        QVERIFY(max_abs(m->forward(x, torch::full({2}, 981, torch::kInt), ctx), ref) <= 1e-4);   // [B] int32
        expect_error([&] { m->forward(x, torch::zeros({3}), ctx); }, {"one timestep or 2", "3"});
        expect_error([&] { m->forward(x, 1.0, ctx.slice(2, 0, 16)); }, {"context", "32", "16"});
    }

    // LCM-distilled U-Nets: time_cond_proj_dim adds time_embedding.cond_proj (no bias); the guidance
    // embedding is optional for them (diffusers without timestep_cond) and refused by any other U-Net.
    void timeConditionOfLcmDistilledUNets() {
        torch::NoGradGuard g;
        auto j = tiny(false).unet.config;
        j["time_cond_proj_dim"] = 16;
        sdl::UNet2DConditionModel m(sdl::UNet2DConditionConfig::from_json(j));
        const auto p = m->named_parameters();
        QCOMPARE(p["time_embedding.cond_proj.weight"].sizes(), (c10::IntArrayRef{32, 16}));
        QVERIFY(!p.contains("time_embedding.cond_proj.bias"));
        const auto x = reference("unet.sample"), ctx = reference("unet.context");
        const auto w = sdl::guidance_scale_embedding(torch::tensor({0.5f, 7.5f}), 16);
        QCOMPARE(m->forward(x, 981, ctx, w).sizes(), x.sizes());
        QCOMPARE(m->forward(x, 981, ctx).sizes(), x.sizes());
        expect_error([&] { m->forward(x, 981, ctx, w.slice(1, 0, 8)); }, {"timestep condition", "[2, 16]"});
        auto plain = load(false, torch::kFloat);
        expect_error([&] { plain->forward(x, 981, ctx, w); }, {"time_cond_proj_dim"});
        j["time_cond_proj_dim"] = 2;
        expect_error([&] { sdl::UNet2DConditionConfig::from_json(j); }, {"time_cond_proj_dim", "at least 4"});
    }

    // bf16: every one of ~100 layers rounds to 8 mantissa bits; the bound is relative to the output.
    void bfloat16WithinBound() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kBFloat16);
        const auto out = m->forward(reference("unet.sample").to(torch::kBFloat16), 981,
                                    reference("unet.context").to(torch::kBFloat16));
        QCOMPARE(out.scalar_type(), torch::kBFloat16);
        const auto ref = reference("unet.out_t981");
        const double err = max_abs(out, ref), scale = ref.abs().max().item<double>();
        qInfo("bf16: out_t981 %.3g (scale %.3g)", err, scale);
        QVERIFY(err <= 0.05 * scale);
    }

    // Channels-last weights make every activation NHWC: diffusers' numbers all the same, on odd
    // sizes too, and with the linear projections of SD 2.x (random weights, against NCHW).
    void channelsLastSameNumbers() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        sdl::use_channels_last(*m);
        const auto conv = m->named_parameters()["conv_in.weight"];
        QVERIFY(conv.is_contiguous(torch::MemoryFormat::ChannelsLast) && !conv.is_contiguous());
        const auto x = reference("unet.sample"), ctx = reference("unet.context");
        const auto out = m->forward(x, 981, ctx);
        QVERIFY(out.is_contiguous(torch::MemoryFormat::ChannelsLast));
        const double e981 = max_abs(out, reference("unet.out_t981"));
        const double evec = max_abs(m->forward(x, reference("unet.timesteps_vec"), ctx), reference("unet.out_tvec"));
        qInfo("channels-last: out_t981 %.3g, out_tvec %.3g", e981, evec);
        QVERIFY(e981 <= 1e-4);
        QVERIFY(evec <= 1e-4);

        const auto odd = torch::randn({1, 4, 13, 10}, at::detail::createCPUGenerator(3));
        auto nchw = load(false, torch::kFloat);
        QVERIFY(max_abs(m->forward(odd, 500, ctx.slice(0, 0, 1)), nchw->forward(odd, 500, ctx.slice(0, 0, 1))) <= 1e-4);

        auto j = tiny(false).unet.config;
        j["use_linear_projection"] = true;
        sdl::UNet2DConditionModel linear(sdl::UNet2DConditionConfig::from_json(j));
        sdl::init_random(*linear, 7);
        const auto want = linear->forward(x, 981, ctx);
        sdl::use_channels_last(*linear);
        const double e = max_abs(linear->forward(x, 981, ctx), want);
        qInfo("channels-last, linear projections: %.3g against NCHW (scale %.3g)", e, want.abs().max().item<double>());
        QVERIFY(e <= 1e-4 * std::max(1.0, want.abs().max().item<double>()));
    }

    void hooksRecordWithoutChangingTheResult() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto x = reference("unet.sample"), ctx = reference("unet.context");
        std::vector<sdl::AttentionProbs> probs;
        sdl::ModelHooks hooks;
        hooks.attention = &probs;
        torch::Tensor mid, resnet;
        hooks.outputs["mid_block"] = [&](const torch::Tensor& t) { mid = t; };
        hooks.outputs["up_blocks.1.resnets.2"] = [&](const torch::Tensor& t) { resnet = t; };
        m->set_hooks(&hooks);
        const auto out = m->forward(x, 981, ctx);
        m->set_hooks(nullptr);
        QVERIFY(max_abs(out, reference("unet.out_t981")) <= 1e-4);
        // Cross-attention layers: 3 down blocks x 2, mid 1, 3 up blocks x 3.
        QCOMPARE(probs.size(), size_t(16));
        QCOMPARE(probs.front().layer, std::string("down_blocks.0.attentions.0.transformer_blocks.0.attn2"));
        QCOMPARE(probs.front().height, int64_t(16));
        QCOMPARE(probs.front().probs.sizes(), (c10::IntArrayRef{2, 256, 77}));
        QCOMPARE(probs[6].layer, std::string("mid_block.attentions.0.transformer_blocks.0.attn2"));
        QCOMPARE(probs[6].height, int64_t(2));
        // Each layer's softmax, averaged over heads, is a distribution over the 77 tokens at every position.
        for (const auto& p : probs)
            QVERIFY2(max_abs(p.probs.sum(-1), torch::ones({2, p.height * p.width})) <= 1e-5, p.layer.c_str());
        QCOMPARE(mid.sizes(), (c10::IntArrayRef{2, 64, 2, 2}));
        QCOMPARE(resnet.sizes(), (c10::IntArrayRef{2, 64, 4, 4}));
    }

    void oddLatentSizesUpsampleToTheSkip() {
        torch::NoGradGuard g;
        auto m = load(false, torch::kFloat);
        const auto out = m->forward(torch::randn({1, 4, 13, 10}), 500, reference("unet.context").slice(0, 0, 1));
        QCOMPARE(out.sizes(), (c10::IntArrayRef{1, 4, 13, 10}));
    }

    void badConfigNamed() {
        auto j = tiny(false).unet.config;
        j["down_block_types"][2] = "Foo";
        const auto c = sdl::UNet2DConditionConfig::from_json(j);
        expect_error([&] { sdl::UNet2DConditionModel m(c); },
                     {"unknown down_block_type 'Foo' (expected CrossAttnDownBlock2D, DownBlock2D)"});
        j = tiny(false).unet.config;
        j["up_block_types"][0] = "Bar";
        const auto c2 = sdl::UNet2DConditionConfig::from_json(j);
        expect_error([&] { sdl::UNet2DConditionModel m(c2); }, {"unknown up_block_type 'Bar'"});
        j = tiny(false).unet.config;
        j["attention_head_dim"] = 5;
        expect_error([&] { sdl::UNet2DConditionConfig::from_json(j); }, {"attention_head_dim", "5", "32"});
        j = tiny(false).unet.config;
        j["mid_block_type"] = "UNetMidBlock2DSimpleCrossAttn";
        expect_error([&] { sdl::UNet2DConditionConfig::from_json(j); }, {"mid_block_type", "UNetMidBlock2DSimpleCrossAttn"});
        j = tiny(false).unet.config;
        j["class_embed_type"] = "timestep";
        expect_error([&] { sdl::UNet2DConditionConfig::from_json(j); }, {"class_embed_type", "timestep"});
        j = tiny(false).unet.config;
        j["layers_per_block"] = nlohmann::json::array({2, 2});
        expect_error([&] { sdl::UNet2DConditionConfig::from_json(j); }, {"layers_per_block", "[2,2]"});
    }

    void sd15NamesAndShapes() {
        sdl::UNet2DConditionModel m(sdl::UNet2DConditionConfig::from_json(sd15()["unet_config"]));
        compare_names_and_shapes(*m, sd15()["unet"]);
        QCOMPARE(sdl::parameter_count(*m), int64_t(859520964));
    }

    // SD 2.x: linear projections, head counts per block (64-dim heads), 1024-dim context.
    void sd2ConfigConstructsAndRuns() {
        auto j = sd15()["unet_config"];
        j["attention_head_dim"] = nlohmann::json::array({5, 10, 20, 20});
        j["use_linear_projection"] = true;
        j["cross_attention_dim"] = 1024;
        j["upcast_attention"] = true;
        sdl::UNet2DConditionModel m(sdl::UNet2DConditionConfig::from_json(j));
        const auto p = m->named_parameters();
        QCOMPARE(p["down_blocks.0.attentions.0.proj_in.weight"].sizes(), (c10::IntArrayRef{320, 320}));
        QCOMPARE(p["up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"].sizes(),
                 (c10::IntArrayRef{1280, 1024}));
        QCOMPARE(sdl::parameter_count(*m), int64_t(865910724));
    }
};

QTEST_GUILESS_MAIN(TestUNet)
#include "test_unet.moc"
