// LoRA files: each spelling (kohya in both U-Net namings with LoCon convolutions and 1x1 projections,
// peft with and without metadata alpha, the attention processors, text encoder layers) is read into the
// same module names with the right alpha and scale; what is not a plain SD 1.x LoRA is refused in one
// line naming what it is.
#include "core/io/lora_files.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"
#include "fixtures/expect_error.h"
#include "fixtures/lora_fixtures.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <fstream>
#include <set>

using namespace lora_fixtures;
using sdl_test::expect_error;

namespace {

std::set<Key> modules_of(const std::vector<Layer>& layers) {
    std::set<Key> s;
    for (const auto& l : layers)
        s.insert({l.network, l.module});
    return s;
}

std::set<Key> modules_of(const sdl::LoraFile& f) {
    std::set<Key> s;
    for (const auto& l : f.layers)
        s.insert({l.network, l.module});
    return s;
}

void write(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
           const std::map<std::string, std::string>& metadata = {}) {
    sdl::save_tensors(path, tensors, metadata);
}

// One well-formed kohya layer of tiny-sd, to spoil in one way per test.
std::map<std::string, torch::Tensor> one_layer() {
    return {{"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
             torch::full({4, 32}, 0.1f)},
            {"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight",
             torch::full({32, 4}, 0.1f)}};
}

} // namespace

class TestLoraFiles : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string file(const std::string& name) const { return tmp_.filePath(QString::fromStdString(name)).toStdString(); }

private slots:
    void kohyaInBothNamings() {
        const auto layers = tiny_layers();
        QVERIFY(layers.size() > 100);
        for (const auto s : {Spelling::Kohya, Spelling::KohyaOriginal}) {
            const bool original = s == Spelling::KohyaOriginal;
            const std::string path = file(original ? "kohya-original.safetensors" : "kohya.safetensors");
            write_lora(path, layers, s);
            const auto f = sdl::read_lora_file(path);
            QCOMPARE(QString::fromStdString(f.format), QString(original ? "kohya (original names)" : "kohya"));
            QCOMPARE(f.layers.size(), layers.size());
            QVERIFY(modules_of(f) == modules_of(layers));
            QCOMPARE(QString::fromStdString(f.name), QString(original ? "kohya-original" : "kohya"));
            for (const auto& l : f.layers) {
                QCOMPARE(l.rank, int64_t{4});
                QCOMPARE(l.alpha, 2.0);
                QCOMPARE(l.scale, 0.5);
            }
        }
    }

    void originalNamesOfEachPart() {
        // Resnet parts, 1x1 projections, the middle block and an output block, as kohya names them.
        const std::map<std::string, std::string> names = {
            {"input_blocks_4_0_in_layers_2", "down_blocks.1.resnets.0.conv1"},
            {"input_blocks_4_0_out_layers_3", "down_blocks.1.resnets.0.conv2"},
            {"input_blocks_4_0_emb_layers_1", "down_blocks.1.resnets.0.time_emb_proj"},
            {"input_blocks_4_0_skip_connection", "down_blocks.1.resnets.0.conv_shortcut"},
            {"input_blocks_1_1_transformer_blocks_0_attn1_to_q", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"},
            {"middle_block_1_proj_in", "mid_block.attentions.0.proj_in"},
            {"output_blocks_5_1_proj_out", "up_blocks.1.attentions.2.proj_out"},
            {"output_blocks_3_1_transformer_blocks_0_ff_net_0_proj",
             "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj"},
        };
        std::map<std::string, torch::Tensor> t;
        for (const auto& [name, module] : names) {
            t["lora_unet_" + name + ".lora_down.weight"] = torch::ones({2, 8});
            t["lora_unet_" + name + ".lora_up.weight"] = torch::ones({8, 2});
        }
        const std::string path = file("parts.safetensors");
        write(path, t);
        const auto f = sdl::read_lora_file(path);
        std::set<std::string> got;
        for (const auto& l : f.layers)
            got.insert(l.module);
        for (const auto& [name, module] : names)
            QVERIFY2(got.count(module), (name + " -> " + module).c_str());
    }

    void absentAlphaIsTheRank() {
        const std::string path = file("no-alpha.safetensors");
        Options o;
        o.store_alpha = false;
        o.rank = 3;
        write_lora(path, only(tiny_layers(), {Kind::Projection, Kind::Text}), Spelling::Kohya, o);
        for (const auto& l : sdl::read_lora_file(path).layers) {
            QCOMPARE(l.alpha, 3.0);
            QCOMPARE(l.scale, 1.0);
        }
    }

    void peftWithAndWithoutMetadataAlpha() {
        const auto layers = attention_projections(tiny_layers());
        for (bool metadata : {false, true}) {
            const std::string path = file(metadata ? "peft-meta.safetensors" : "peft.safetensors");
            Options o;
            o.metadata = metadata;
            o.alpha = 8;
            write_lora(path, layers, Spelling::Peft, o);
            const auto f = sdl::read_lora_file(path);
            QCOMPARE(QString::fromStdString(f.format), QString("peft"));
            QVERIFY(modules_of(f) == modules_of(layers));
            for (const auto& l : f.layers) {
                QCOMPARE(l.alpha, metadata ? 8.0 : 4.0);
                QCOMPARE(l.scale, metadata ? 2.0 : 1.0);
            }
        }
    }

    void peftMetadataNestedPatternAndRsLora() {
        std::map<std::string, torch::Tensor> peft;
        peft["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"] = torch::ones({4, 32});
        peft["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight"] = torch::ones({32, 4});
        peft["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.lora_A.weight"] = torch::ones({4, 32});
        peft["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.lora_B.weight"] = torch::ones({32, 4});
        const std::string path = file("peft-nested.safetensors");
        const nlohmann::json meta = {{"unet", {{"r", 4}, {"lora_alpha", 16}, {"use_rslora", true},
                                               {"alpha_pattern", {{"attn1.to_k", 2}}}}}};
        write(path, peft, {{"lora_adapter_metadata", meta.dump()}});
        const auto f = sdl::read_lora_file(path);
        QCOMPARE(f.layers.size(), size_t{2});
        for (const auto& l : f.layers) {
            const bool k = lora_fixtures::ends_with(l.module, "to_k");
            QCOMPARE(l.alpha, k ? 2.0 : 16.0);
            QCOMPARE(l.scale, (k ? 2.0 : 16.0) / 2.0);  // alpha / sqrt(4)
        }
    }

    void attentionProcessorsAndTextEncoder() {
        const auto layers = attention_projections(tiny_layers());
        const std::string path = file("processors.safetensors");
        write_lora(path, layers, Spelling::Processor);
        const auto f = sdl::read_lora_file(path);
        QCOMPARE(QString::fromStdString(f.format), QString("diffusers (attention processors)"));
        QVERIFY(modules_of(f) == modules_of(layers));
        bool out = false, text = false;
        for (const auto& l : f.layers) {
            out = out || lora_fixtures::ends_with(l.module, ".to_out.0");
            text = text || l.network == sdl::LoraNetwork::TextEncoder;
        }
        QVERIFY(out);
        QVERIFY(text);
    }

    void levels() {
        QCOMPARE(QString::fromStdString(sdl::unet_level("down_blocks.1.attentions.0.proj_in")), QString("down 1"));
        QCOMPARE(QString::fromStdString(sdl::unet_level("mid_block.attentions.0.proj_in")), QString("mid"));
        QCOMPARE(QString::fromStdString(sdl::unet_level("up_blocks.3.resnets.2.conv1")), QString("up 3"));
        QCOMPARE(QString::fromStdString(sdl::unet_level("conv_in")), QString(""));
    }

    // The bad inputs: one line each, naming the file and what is wrong.
    void rankMismatch() {
        auto t = one_layer();
        for (auto& [k, v] : t)
            v = lora_fixtures::ends_with(k, "lora_up.weight") ? torch::ones({32, 3}) : torch::ones({4, 32});
        const std::string path = file("rank.safetensors");
        write(path, t);
        expect_error([&] { sdl::read_lora_file(path); }, {path, "rank mismatch", "rank 4", "rank 3"});
    }
    void nanIsNamed() {
        auto t = one_layer();
        t.begin()->second[0][1] = NAN;
        const std::string path = file("nan.safetensors");
        write(path, t);
        expect_error([&] { sdl::read_lora_file(path); }, {path, t.begin()->first, "NaN"});
    }
    void emptyFiles() {
        const std::string zero = file("zero.safetensors");
        std::ofstream(zero).close();
        expect_error([&] { sdl::read_lora_file(zero); }, {zero});
        const std::string none = file("none.safetensors");
        write(none, {});
        expect_error([&] { sdl::read_lora_file(none); }, {none, "no tensors"});
    }
    void unknownKeysAreListedWithTheirCount() {
        auto t = one_layer();
        for (int i = 0; i < 5; ++i)
            t["lora_unet_down_blocks_0_gizmo_" + std::to_string(i) + ".lora_down.weight"] = torch::ones({4, 32});
        const std::string path = file("unknown.safetensors");
        write(path, t);
        expect_error([&] { sdl::read_lora_file(path); },
                     {path, "5 of its 7 keys match no SD 1.x layer", "lora_unet_down_blocks_0_gizmo_0", "and 2 more"});
    }
    void sdxlIsRefused() {
        auto t = one_layer();
        t["lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = torch::ones({4, 768});
        t["lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = torch::ones({4, 1280});
        const std::string path = file("sdxl.safetensors");
        write(path, t);
        expect_error([&] { sdl::read_lora_file(path); }, {path, "SDXL", "lora_te1_"});
    }
    void lycorisIsRefused() {
        const std::map<std::string, std::string> cases = {
            {"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a", "LoHa"},
            {"lora_unet_down_blocks_0_attentions_0_proj_in.lokr_w1", "LoKr"},
            {"lora_unet_down_blocks_0_resnets_0_conv1.lora_mid.weight", "Tucker"},
            {"lora_unet_down_blocks_0_attentions_0_proj_in.dora_scale", "DoRA"},
            {"unet.down_blocks.0.attentions.0.proj_in.lora_magnitude_vector", "DoRA"},
        };
        for (const auto& [key, what] : cases) {
            auto t = one_layer();
            t[key] = torch::ones({4, 4});
            const std::string path = file(what + ".safetensors");
            write(path, t);
            expect_error([&] { sdl::read_lora_file(path); }, {path, what, key});
        }
        auto peft = std::map<std::string, torch::Tensor>{
            {"unet.mid_block.attentions.0.proj_in.lora_A.weight", torch::ones({4, 64})},
            {"unet.mid_block.attentions.0.proj_in.lora_B.weight", torch::ones({64, 4})}};
        const std::string path = file("dora-meta.safetensors");
        write(path, peft, {{"lora_adapter_metadata", R"({"unet.r": 4, "unet.use_dora": true})"}});
        expect_error([&] { sdl::read_lora_file(path); }, {path, "DoRA", "use_dora"});
    }
    void pickleIsRefused() {
        const std::string path = file("lora.pt");
        std::ofstream(path, std::ios::binary) << std::string("\x80\x02}q\x00.", 6);
        expect_error([&] { sdl::read_lora_file(path); }, {path, "safetensors"});
    }
    void modelIsNotALora() {
        const std::string path = data("tiny-sd.single-file.safetensors");
        expect_error([&] { sdl::read_lora_file(path); }, {path, "model's weights, not a LoRA"});
        QVERIFY(!sdl::is_lora_file(*sdl::SafetensorsFile::open(path)));
    }
    void unpairedAndMismatchedMatrices() {
        auto t = one_layer();
        t.erase(std::prev(t.end()));  // the up matrix
        const std::string lone = file("lone.safetensors");
        write(lone, t);
        expect_error([&] { sdl::read_lora_file(lone); }, {lone, "lora_down.weight", "no up partner"});

        auto m = one_layer();
        m["lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"] = torch::ones({4, 64, 1, 1});
        m["lora_unet_mid_block_attentions_0_proj_in.lora_up.weight"] = torch::ones({64, 4});
        const std::string dims = file("dims.safetensors");
        write(dims, m);
        expect_error([&] { sdl::read_lora_file(dims); }, {dims, "4-D down matrix", "2-D up matrix"});

        auto c = one_layer();
        c["lora_unet_mid_block_resnets_0_conv1.lora_down.weight"] = torch::ones({4, 64, 3, 3});
        c["lora_unet_mid_block_resnets_0_conv1.lora_up.weight"] = torch::ones({64, 4, 3, 3});
        const std::string conv = file("conv-up.safetensors");
        write(conv, c);
        expect_error([&] { sdl::read_lora_file(conv); }, {conv, "[64, 4, 3, 3]", "[out, rank, 1, 1]"});
    }
    void mixedSpellingsAndTwiceTheSameLayer() {
        auto t = one_layer();
        t["unet.mid_block.attentions.0.proj_in.lora_A.weight"] = torch::ones({4, 64});
        t["unet.mid_block.attentions.0.proj_in.lora_B.weight"] = torch::ones({64, 4});
        const std::string mixed = file("mixed.safetensors");
        write(mixed, t);
        expect_error([&] { sdl::read_lora_file(mixed); }, {mixed, "mixes"});

        auto twice = one_layer();
        twice["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight"] = torch::ones({4, 32});
        twice["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_up.weight"] = torch::ones({32, 4});
        const std::string both = file("twice.safetensors");
        write(both, twice);
        expect_error([&] { sdl::read_lora_file(both); },
                     {both, "both change unet down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"});
    }
};

QTEST_APPLESS_MAIN(TestLoraFiles)
#include "test_lora_files.moc"
