// Model loader: the two tiny-sd layouts give identical tensors, single-file configs are inferred
// right, full-size sd15 names survive both layouts, and unsupported inputs are refused by name.
#include "core/io/model_files.h"
#include "core/io/single_file.h"
#include "core/io/tensor_io.h"
#include "core/util/error.h"
#include "core/util/resources.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

namespace fs = std::filesystem;

namespace {

const std::string kData = SDLENS_TEST_DATA;
const std::string kFolder = kData + "/tiny-sd";
const std::string kSingle = kData + "/tiny-sd.single-file.safetensors";

nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

void write_json(const fs::path& p, const nlohmann::json& j) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << j.dump(2);
}

struct Spec {
    std::string name;
    std::vector<int64_t> shape;
};

// A full-size file costs nothing: the header is real, the data a hole (reads as zeros).
void write_sparse(const fs::path& p, const std::vector<Spec>& specs) {
    fs::create_directories(p.parent_path());
    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    for (const auto& s : specs) {
        uint64_t n = 2;
        for (auto d : s.shape)
            n *= static_cast<uint64_t>(d);
        header[s.name] = {{"dtype", "F16"}, {"shape", s.shape}, {"data_offsets", {offset, offset + n}}};
        offset += n;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    {
        std::ofstream out(p, std::ios::binary);
        const uint64_t len = text.size();
        out.write(reinterpret_cast<const char*>(&len), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
    fs::resize_file(p, 8 + text.size() + offset);
}

std::vector<Spec> specs_of(const nlohmann::json& shapes, const std::function<std::string(const std::string&)>& rename) {
    std::vector<Spec> out;
    for (auto it = shapes.begin(); it != shapes.end(); ++it)
        out.push_back({rename(it.key()), it.value().get<std::vector<int64_t>>()});
    return out;
}

// Copies a safetensors file, replacing or adding the given tensors.
void rewrite(const std::string& src, const std::string& dst, const std::vector<sdl::TensorBlob>& changes) {
    const auto f = sdl::SafetensorsFile::open(src);
    std::map<std::string, sdl::TensorBlob> blobs;
    for (const auto& [name, v] : f->tensors())
        blobs[name] = {name, v.dtype, v.shape, v.data, v.nbytes};
    for (const auto& c : changes)
        blobs[c.name] = c;
    std::vector<sdl::TensorBlob> list;
    for (const auto& [name, b] : blobs)
        list.push_back(b);
    sdl::write_safetensors(dst, list);
}

std::set<std::string> names(const sdl::ComponentFiles& c) {
    std::set<std::string> out;
    for (const auto& [n, v] : c.tensors)
        out.insert(n);
    return out;
}

std::set<std::string> names(const nlohmann::json& shapes) {
    std::set<std::string> out;
    for (auto it = shapes.begin(); it != shapes.end(); ++it)
        out.insert(it.key());
    return out;
}

// The config fields that decide the architecture and numerics (not sample_size: a default
// resolution the single file cannot know).
const std::map<std::string, std::vector<std::string>> kFieldsThatMatter{
    {"unet",
     {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types", "up_block_types",
      "mid_block_type", "cross_attention_dim", "attention_head_dim", "norm_num_groups", "norm_eps", "act_fn",
      "use_linear_projection", "transformer_layers_per_block", "flip_sin_to_cos", "freq_shift", "conv_in_kernel",
      "conv_out_kernel", "downsample_padding", "upcast_attention", "only_cross_attention"}},
    {"vae",
     {"in_channels", "out_channels", "latent_channels", "block_out_channels", "layers_per_block", "down_block_types",
      "up_block_types", "norm_num_groups", "act_fn", "scaling_factor", "use_quant_conv", "use_post_quant_conv",
      "mid_block_add_attention"}},
    {"text_encoder",
     {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
      "vocab_size", "hidden_act", "layer_norm_eps"}},
};

QString error_of(const std::string& path) {
    try {
        sdl::open_model_files(path);
    } catch (const sdl::Error& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

} // namespace

class TestModelFiles : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    fs::path tmp(const std::string& name) const { return fs::path(dir_.path().toStdString()) / name; }

    void expect_error(const std::string& path, const QStringList& fragments) {
        const QString msg = error_of(path);
        QVERIFY2(!msg.isEmpty(), ("no error for " + path).c_str());
        for (const auto& f : fragments)
            QVERIFY2(msg.contains(f, Qt::CaseInsensitive), qPrintable("message lacks '" + f + "': " + msg));
    }

    void compare_config(const char* component, const nlohmann::json& inferred, const nlohmann::json& expected) {
        for (const auto& field : kFieldsThatMatter.at(component)) {
            const auto want = expected.value(field, nlohmann::json());
            const auto got = inferred.value(field, nlohmann::json());
            QVERIFY2(got == want, qPrintable(QString("%1.%2: inferred %3, expected %4")
                                                 .arg(component, QString::fromStdString(field),
                                                      QString::fromStdString(got.dump()),
                                                      QString::fromStdString(want.dump()))));
        }
    }

private slots:
    void initTestCase() { QVERIFY(dir_.isValid()); }

    void opensTinyFolder() {
        const auto m = sdl::open_model_files(kFolder);
        QCOMPARE(m.layout, sdl::ModelLayout::DiffusersFolder);
        QCOMPARE(std::string(sdl::layout_name(m.layout)), std::string("diffusers"));
        QCOMPARE(m.text_encoder.ignored, std::vector<std::string>{"text_model.embeddings.position_ids"});
        QVERIFY(m.text_encoder.tensors.count("text_model.final_layer_norm.weight"));
        QCOMPARE(m.unet.config.at("cross_attention_dim").get<int>(), 32);
        QCOMPARE(m.scheduler_config.at("_class_name").get<std::string>(), std::string("PNDMScheduler"));
        QVERIFY(fs::exists(m.tokenizer.vocab_json) && fs::exists(m.tokenizer.merges_txt));
        QVERIFY(m.tokenizer.tokenizer_json.empty());
        // Pointing at model_index.json opens its folder.
        QCOMPARE(sdl::open_model_files(kFolder + "/model_index.json").unet.tensors.size(), m.unet.tensors.size());
    }

    void singleFileMatchesFolder() {
        const auto a = sdl::open_model_files(kFolder);
        const auto b = sdl::open_model_files(kSingle);
        QCOMPARE(b.layout, sdl::ModelLayout::SingleFile);
        for (auto [ca, cb] : {std::pair{&a.text_encoder, &b.text_encoder}, {&a.unet, &b.unet}, {&a.vae, &b.vae}}) {
            QCOMPARE(names(*cb), names(*ca));
            for (const auto& [name, va] : ca->tensors) {
                const auto& vb = cb->tensors.at(name);
                QVERIFY2(va.dtype == vb.dtype && va.shape == vb.shape && va.nbytes == vb.nbytes, name.c_str());
                QVERIFY2(std::memcmp(va.data, vb.data, va.nbytes) == 0, name.c_str());
            }
        }
        auto has = [](const std::vector<std::string>& v, const std::string& s) {
            return std::find(v.begin(), v.end(), s) != v.end();
        };
        QVERIFY(has(b.unet.ignored, "betas"));
        QVERIFY(has(b.unet.ignored, "alphas_cumprod"));
        QVERIFY(has(b.unet.ignored, "model_ema.decay"));
        QVERIFY(has(b.text_encoder.ignored, "cond_stage_model.transformer.text_model.embeddings.position_ids"));
        QVERIFY(b.scheduler_config.is_object() && b.scheduler_config.empty());
        QVERIFY(b.tokenizer.vocab_json.empty() && b.tokenizer.tokenizer_json.empty());
        // Same values once converted, too (the reshaped VAE attention included).
        const auto& w = "decoder.mid_block.attentions.0.to_q.weight";
        QVERIFY(torch::equal(sdl::to_tensor(a.vae.tensors.at(w), torch::kFloat32),
                             sdl::to_tensor(b.vae.tensors.at(w), torch::kFloat32)));
    }

    void inferredConfigsMatchFolder() {
        const auto a = sdl::open_model_files(kFolder);
        const auto b = sdl::open_model_files(kSingle);
        compare_config("unet", b.unet.config, a.unet.config);
        compare_config("vae", b.vae.config, a.vae.config);
        compare_config("text_encoder", b.text_encoder.config, a.text_encoder.config);
    }

    // make-model's tiny preset is the expected name set of tiny-sd: the loaded names, shapes and
    // configs must equal it.
    void tinyPresetMatchesTinySd() {
        const auto preset = read_json(sdl::resource_path("presets/tiny.json"));
        const auto m = sdl::open_model_files(kFolder);
        for (const auto* c : {&m.text_encoder, &m.unet, &m.vae}) {
            QCOMPARE(names(*c), names(preset[c->name]));
            for (const auto& [name, v] : c->tensors)
                QVERIFY2(v.shape == preset[c->name][name].get<std::vector<int64_t>>(), name.c_str());
            compare_config(c->name.c_str(), preset[c->name + "_config"], c->config);
        }
    }

    // sd15-shapes.json holds what a diffusers SD 1.5 folder contains; a folder written with those
    // names, in the variant spellings real downloads use, must load to exactly those names.
    void sd15FolderGivesSd15Names() {
        const auto shapes = read_json(sdl::resource_path("sd15-shapes.json"));
        const fs::path root = tmp("sd15-folder");
        write_json(root / "model_index.json", {{"_class_name", "StableDiffusionPipeline"}});
        write_json(root / "text_encoder" / "config.json", shapes["text_encoder_config"]);
        write_json(root / "unet" / "config.json", shapes["unet_config"]);
        write_json(root / "vae" / "config.json", shapes["vae_config"]);
        write_json(root / "tokenizer" / "tokenizer.json", nlohmann::json::object());
        // Text encoder without the "text_model." level and with the position_ids buffer.
        auto te = specs_of(shapes["text_encoder"], [](const std::string& n) { return n.substr(strlen("text_model.")); });
        te.push_back({"embeddings.position_ids", {1, 77}});
        write_sparse(root / "text_encoder" / "model.safetensors", te);
        // U-Net only as an fp16 variant.
        write_sparse(root / "unet" / "diffusion_pytorch_model.fp16.safetensors",
                     specs_of(shapes["unet"], [](const std::string& n) { return n; }));
        // VAE in two shards.
        nlohmann::json weight_map = nlohmann::json::object();
        std::vector<Spec> enc, dec;
        for (const auto& s : specs_of(shapes["vae"], [](const std::string& n) { return n; })) {
            const bool first = s.name.rfind("encoder.", 0) == 0;
            (first ? enc : dec).push_back(s);
            weight_map[s.name] = first ? "part-1.safetensors" : "part-2.safetensors";
        }
        write_sparse(root / "vae" / "part-1.safetensors", enc);
        write_sparse(root / "vae" / "part-2.safetensors", dec);
        write_json(root / "vae" / "diffusion_pytorch_model.safetensors.index.json", {{"weight_map", weight_map}});

        const auto m = sdl::open_model_files(root.string());
        QCOMPARE(names(m.text_encoder), names(shapes["text_encoder"]));
        QCOMPARE(names(m.unet), names(shapes["unet"]));
        QCOMPARE(names(m.vae), names(shapes["vae"]));
        QCOMPARE(m.text_encoder.ignored, std::vector<std::string>{"embeddings.position_ids"});
        QCOMPARE(m.vae.files.size(), size_t(2));
        QVERIFY(m.tokenizer.vocab_json.empty() && !m.tokenizer.tokenizer_json.empty());
        QVERIFY(m.scheduler_config.empty());
    }

    // A full-size CompVis checkpoint: tiny-sd's single-file keys have SD 1.5's structure (4 levels,
    // 2 layers, 1 transformer block), so renaming them gives SD 1.5's names, except for the shortcut
    // convolutions where SD 1.5 widens and tiny-sd (32, 32, 64, 64) does not. Given SD 1.5's shapes,
    // the loader must infer SD 1.5's configs.
    void sd15SingleFileInfersSd15Configs() {
        const auto shapes = read_json(sdl::resource_path("sd15-shapes.json"));
        std::set<std::string> keys;
        const auto tiny = sdl::SafetensorsFile::open(kSingle);
        for (const auto& [key, v] : tiny->tensors())
            keys.insert(key);
        for (const char* w : {".weight", ".bias"}) {
            keys.insert(std::string("model.diffusion_model.input_blocks.4.0.skip_connection") + w);
            keys.insert(std::string("first_stage_model.encoder.down.1.block.0.nin_shortcut") + w);
            keys.insert(std::string("first_stage_model.decoder.up.0.block.0.nin_shortcut") + w);
        }
        std::vector<Spec> specs;
        for (const auto& key : keys) {
            const auto t = sdl::translate_single_file_key(key, sdl::SingleFileGeometry{});
            if (t.part == sdl::SingleFilePart::Unet || t.part == sdl::SingleFilePart::Vae) {
                const auto& comp = shapes[t.part == sdl::SingleFilePart::Unet ? "unet" : "vae"];
                QVERIFY2(comp.contains(t.name), (key + " -> " + t.name).c_str());
                auto shape = comp[t.name].get<std::vector<int64_t>>();
                if (t.conv1x1_to_linear)
                    shape.insert(shape.end(), {1, 1});
                specs.push_back({key, shape});
            }
        }
        for (const auto& s : specs_of(shapes["text_encoder"],
                                      [](const std::string& n) { return "cond_stage_model.transformer." + n; }))
            specs.push_back(s);
        specs.push_back({"betas", {1000}});
        const fs::path file = tmp("sd15.safetensors");
        write_sparse(file, specs);

        const auto m = sdl::open_model_files(file.string());
        QCOMPARE(names(m.text_encoder), names(shapes["text_encoder"]));
        QCOMPARE(names(m.unet), names(shapes["unet"]));
        QCOMPARE(names(m.vae), names(shapes["vae"]));
        for (const auto& [name, v] : m.vae.tensors)
            QVERIFY2(v.shape == shapes["vae"][name].get<std::vector<int64_t>>(), name.c_str());
        compare_config("unet", m.unet.config, shapes["unet_config"]);
        compare_config("vae", m.vae.config, shapes["vae_config"]);
        compare_config("text_encoder", m.text_encoder.config, shapes["text_encoder_config"]);
        QCOMPARE(m.unet.config["sample_size"].get<int>(), 64);
    }

    void prefersPlainWeightsOverFp16() {
        const fs::path root = tmp("variants");
        fs::copy(kFolder, root, fs::copy_options::recursive);
        const auto unet = root / "unet";
        fs::rename(unet / "diffusion_pytorch_model.safetensors", unet / "diffusion_pytorch_model.fp16.safetensors");
        QCOMPARE(sdl::open_model_files(root.string()).unet.tensors.at("conv_in.weight").dtype, sdl::DType::F16);
        const auto fp16 = sdl::SafetensorsFile::open((unet / "diffusion_pytorch_model.fp16.safetensors").string());
        std::map<std::string, torch::Tensor> fp32;
        for (const auto& [name, v] : fp16->tensors())
            fp32[name] = sdl::to_tensor(v, torch::kFloat32);
        sdl::save_tensors((unet / "diffusion_pytorch_model.safetensors").string(), fp32);
        QCOMPARE(sdl::open_model_files(root.string()).unet.tensors.at("conv_in.weight").dtype, sdl::DType::F32);
    }

    void refusesPickles() {
        const fs::path ckpt = tmp("model.ckpt");
        std::ofstream(ckpt, std::ios::binary) << "PK\x03\x04 not really a zip";
        expect_error(ckpt.string(), {"model.ckpt", "pickle", "safetensors", "weights_only"});
        // Sniffed by content, whatever the name.
        const fs::path renamed = tmp("model.weights");
        std::ofstream(renamed, std::ios::binary) << "\x80\x02}q";
        expect_error(renamed.string(), {"pickle"});

        const fs::path root = tmp("pickled-folder");
        fs::copy(kFolder, root, fs::copy_options::recursive);
        fs::rename(root / "unet" / "diffusion_pytorch_model.safetensors", root / "unet" / "diffusion_pytorch_model.bin");
        expect_error(root.string(), {"diffusion_pytorch_model.bin", "pickle", "safe_serialization"});
    }

    void refusesInpaintingUnet() {
        const std::vector<uint16_t> w(32 * 9 * 3 * 3, 0);
        const std::string path = tmp("inpaint.safetensors").string();
        rewrite(kSingle, path,
                {{"model.diffusion_model.input_blocks.0.0.weight", sdl::DType::F16, {32, 9, 3, 3}, w.data(),
                  w.size() * 2}});
        expect_error(path, {path.c_str(), "inpainting", "9 input channels"});
    }

    void refusesSd2AndSdxl() {
        const uint16_t x = 0;
        const std::string sd2 = tmp("sd2.safetensors").string();
        rewrite(kSingle, sd2, {{"cond_stage_model.model.positional_embedding", sdl::DType::F16, {1}, &x, 2}});
        expect_error(sd2, {"2.x", "OpenCLIP"});
        const std::string xl = tmp("sdxl.safetensors").string();
        rewrite(kSingle, xl, {{"conditioner.embedders.0.transformer.text_model.x", sdl::DType::F16, {1}, &x, 2}});
        expect_error(xl, {"SDXL"});
        // A diffusers folder whose U-Net expects a 1024-wide context.
        const fs::path root = tmp("sd2-folder");
        fs::copy(kFolder, root, fs::copy_options::recursive);
        auto cfg = read_json(root / "unet" / "config.json");
        cfg["cross_attention_dim"] = 1024;
        write_json(root / "unet" / "config.json", cfg);
        expect_error(root.string(), {"unet/config.json", "2.x"});
    }

    void refusesUnknownKeysInsideModels() {
        const uint16_t x = 0;
        const std::string path = tmp("classcond.safetensors").string();
        rewrite(kSingle, path, {{"model.diffusion_model.label_emb.0.0.weight", sdl::DType::F16, {1}, &x, 2}});
        expect_error(path, {"model.diffusion_model.label_emb.0.0.weight", "no diffusers counterpart"});
    }

    void explainsForeignFiles() {
        expect_error(kFolder + "/unet/diffusion_pytorch_model.safetensors", {"lone diffusers U-Net"});
        expect_error(kFolder + "/vae/diffusion_pytorch_model.safetensors", {"lone diffusers VAE"});
        expect_error(kData + "/reference.safetensors", {"not a Stable Diffusion 1.x single-file checkpoint"});
    }

    void explainsMissingPieces() {
        expect_error(tmp("nowhere").string(), {"nowhere", "no such file or folder"});
        const fs::path plain = tmp("plain-folder");
        fs::create_directories(plain);
        fs::copy(kSingle, plain / "model.safetensors");
        expect_error(plain.string(), {"no model_index.json", "model.safetensors"});
        const fs::path root = tmp("no-vae");
        fs::copy(kFolder, root, fs::copy_options::recursive);
        fs::remove_all(root / "vae");
        expect_error(root.string(), {"no vae/"});
        fs::remove(root / "unet" / "config.json");
        expect_error(root.string(), {"unet", "config.json"});
        const fs::path half = tmp("half-tokenizer");
        fs::copy(kFolder, half, fs::copy_options::recursive);
        fs::remove(half / "tokenizer" / "merges.txt");
        expect_error(half.string(), {"merges.txt"});
    }
};

QTEST_GUILESS_MAIN(TestModelFiles)
#include "test_model_files.moc"
