// Listing the models on the computer: what each hub repo, diffusers folder and checkpoint file is
// (layout, family, precision, size, completeness), decided from configs and headers alone, and the
// JSON each becomes. Families other than SD 1.x are told apart by their key names with tiny
// header-only files.
#include "core/io/model_scan.h"
#include "core/util/error.h"
#include "tests/core/io/fake_hub.h"

#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>
#include <fstream>
#include <map>

namespace fs = std::filesystem;

namespace {

const std::string kData = SDLENS_TEST_DATA;
const std::string kFolder = kData + "/tiny-sd";
const std::string kSingle = kData + "/tiny-sd.single-file.safetensors";
const std::string kMain = "0123456789abcdef0123456789abcdef01234567";

struct Key {
    std::string name, dtype;
    std::vector<int64_t> shape;
};

// A valid safetensors file whose tensors are all zeros; the data is a hole, so shapes cost nothing.
void write_header_file(const fs::path& p, const std::vector<Key>& keys) {
    fs::create_directories(p.parent_path());
    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    for (const auto& k : keys) {
        uint64_t n = k.dtype == "F32" ? 4 : 2;
        for (auto d : k.shape)
            n *= static_cast<uint64_t>(d);
        header[k.name] = {{"dtype", k.dtype}, {"shape", k.shape}, {"data_offsets", {offset, offset + n}}};
        offset += n;
    }
    const std::string text = header.dump();
    {
        std::ofstream out(p, std::ios::binary);
        const uint64_t len = text.size();
        out.write(reinterpret_cast<const char*>(&len), 8);
        out << text;
    }
    fs::resize_file(p, 8 + text.size() + offset);
}

uint64_t tree_size(const fs::path& root) {
    uint64_t total = 0;
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file() && !e.is_symlink())
            total += e.file_size();
    return total;
}

std::map<std::string, sdl::FoundModel> by_key(const std::vector<sdl::FoundModel>& found) {
    std::map<std::string, sdl::FoundModel> out;
    for (const auto& m : found)
        out[m.id.empty() ? fs::path(m.path).filename().string() : m.id] = m;
    return out;
}

QString joined(const std::vector<std::string>& v) {
    QStringList l;
    for (const auto& s : v)
        l << QString::fromStdString(s);
    return l.join(" | ");
}

} // namespace

class TestModelScan : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;
    fs::path tmp(const std::string& name) const { return fs::path(dir_.path().toStdString()) / name; }

    void expect(const sdl::FoundModel& m, const std::string& layout, const std::string& family,
                const std::string& precision, bool complete) {
        QCOMPARE(m.layout, layout);
        QCOMPARE(m.family, family);
        QCOMPARE(m.precision, precision);
        QVERIFY2(m.complete == complete, qPrintable(QString::fromStdString(m.path) + " missing: " + joined(m.missing)));
    }

private slots:
    void initTestCase() {
        QVERIFY(dir_.isValid());
        qputenv("HF_HUB_CACHE", QByteArray::fromStdString(tmp("hub").string()));
    }

    void hubRepos() {
        const fs::path cache = tmp("hub");
        const fs::path snap = sdl::test::add_hub_snapshot(cache, "owner", "tiny", kFolder, kMain);
        // A second revision of the same files adds no blobs.
        sdl::test::add_hub_snapshot(cache, "owner", "tiny", kFolder, std::string(40, 'b'), "v1");
        const fs::path broken = sdl::test::add_hub_snapshot(cache, "owner", "broken", kFolder, kMain);
        const fs::path link = broken / "vae" / "diffusion_pytorch_model.safetensors";
        const std::string target = fs::read_symlink(link).string();
        fs::remove(link.parent_path() / target);
        sdl::test::add_hub_snapshot(cache, "owner", "vae", kFolder + "/vae", kMain);
        fs::create_directories(tmp("single-src"));
        fs::copy_file(kSingle, tmp("single-src") / "tiny.safetensors");
        sdl::test::add_hub_snapshot(cache, "owner", "single", tmp("single-src"), kMain);
        sdl::test::add_hub_snapshot(cache, "owner", "noref", kFolder + "/vae", kMain, "");
        fs::create_directories(cache / "datasets--someone--data");

        const auto found = sdl::find_models({}, true);
        QCOMPARE(found.size(), size_t(5));
        auto models = by_key(found);

        const auto& tiny = models["owner/tiny"];
        expect(tiny, "hub-cache diffusers", "sd1", "fp16", true);
        QCOMPARE(fs::path(tiny.path), snap);
        QCOMPARE(tiny.size_bytes, tree_size(cache / "models--owner--tiny" / "blobs"));
        QCOMPARE(tiny.size_bytes, tree_size(kFolder));
        const auto j = sdl::to_json(tiny);
        for (const char* key : {"id", "path", "layout", "family", "size_bytes", "precision", "complete", "missing"})
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j.size(), size_t(8));
        QCOMPARE(j["id"].get<std::string>(), std::string("owner/tiny"));
        QVERIFY(j["missing"].empty());

        const auto& b = models["owner/broken"];
        expect(b, "hub-cache diffusers", "sd1", "fp16", false);
        QVERIFY2(joined(b.missing).contains("vae/diffusion_pytorch_model.safetensors (broken link to " +
                                            QString::fromStdString(target)),
                 qPrintable(joined(b.missing)));
        QVERIFY2(joined(b.missing).contains("vae weights"), qPrintable(joined(b.missing)));

        expect(models["owner/vae"], "hub-cache files", "vae", "fp16", true);
        const auto& single = models["owner/single"];
        expect(single, "hub-cache files", "sd1", "fp16", true);
        QCOMPARE(fs::path(single.path).filename().string(), std::string("tiny.safetensors"));
        // Without refs/main the entry names its snapshot, which --model opens as well.
        expect(models["owner/noref@" + kMain], "hub-cache files", "vae", "fp16", true);
    }

    void modelsFolder() {
        const fs::path d = tmp("Stable-diffusion");
        fs::create_directories(d / "sub");
        fs::create_symlink(kSingle, d / "tiny.single-file.safetensors");
        fs::create_directory_symlink(kFolder, d / "sub" / "tiny-diffusers");
        const std::vector<int64_t> conv_in4{320, 4, 3, 3}, conv_in9{320, 9, 3, 3};
        write_header_file(d / "sdxl.safetensors",
                          {{"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight", "F16", {768}},
                           {"model.diffusion_model.input_blocks.0.0.weight", "F16", conv_in4},
                           {"first_stage_model.decoder.conv_in.weight", "F16", {512, 4, 3, 3}}});
        write_header_file(d / "sd2.safetensors",
                          {{"cond_stage_model.model.ln_final.weight", "BF16", {1024}},
                           {"model.diffusion_model.input_blocks.0.0.weight", "BF16", conv_in4},
                           {"first_stage_model.decoder.conv_in.weight", "BF16", {512, 4, 3, 3}},
                           {"betas", "F32", {1000}}});
        write_header_file(d / "sub" / "sd2-unet-only.safetensors",
                          {{"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", "F32",
                            {320, 1024}}});
        write_header_file(d / "inpainting.safetensors",
                          {{"model.diffusion_model.input_blocks.0.0.weight", "F32", conv_in9},
                           {"cond_stage_model.transformer.text_model.final_layer_norm.weight", "F32", {768}},
                           {"first_stage_model.decoder.conv_in.weight", "F32", {512, 4, 3, 3}}});
        write_header_file(d / "lora.safetensors",
                          {{"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "F16", {4, 320}},
                           {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", "F32", {320, 4}},
                           {"lora_unet_down_blocks_0_attentions_0_proj_in.alpha", "F32", {}}});
        write_header_file(d / "vae-ft-mse.safetensors", {{"encoder.conv_in.weight", "F32", {128, 3, 3, 3}},
                                                         {"decoder.conv_in.weight", "F32", {512, 4, 3, 3}},
                                                         {"quant_conv.weight", "F32", {8, 8, 1, 1}}});
        write_header_file(d / "clip.safetensors",
                          {{"text_model.embeddings.token_embedding.weight", "F16", {49408, 768}}});
        std::ofstream(d / "junk.safetensors") << "not a safetensors file";
        std::ofstream(d / "old.ckpt", std::ios::binary) << "PK\x03\x04 a torch.save zip";
        std::ofstream(d / "readme.txt") << "not a model";
        write_header_file(d / "sub" / "deeper" / "too-deep.safetensors",
                          {{"text_model.embeddings.token_embedding.weight", "F16", {8, 8}}});
        // A diffusers folder half copied: configs but no U-Net weights and no VAE.
        fs::create_directories(d / "partial" / "unet");
        fs::copy_file(kFolder + "/model_index.json", d / "partial" / "model_index.json");
        fs::copy_file(kFolder + "/unet/config.json", d / "partial" / "unet" / "config.json");
        fs::copy(kFolder + "/text_encoder", d / "partial" / "text_encoder");
        fs::copy(kFolder + "/tokenizer", d / "partial" / "tokenizer");
        fs::copy(kFolder + "/scheduler", d / "partial" / "scheduler");

        const auto found = sdl::find_models({d.string()}, false);
        auto models = by_key(found);
        QCOMPARE(found.size(), size_t(12));
        QVERIFY(!models.count("readme.txt") && !models.count("too-deep.safetensors"));

        const auto& single = models["tiny.single-file.safetensors"];
        // The fp32 schedule buffers beside the fp16 weights do not make it "mixed".
        expect(single, "single-file", "sd1", "fp16", true);
        QCOMPARE(single.size_bytes, static_cast<uint64_t>(fs::file_size(kSingle)));
        QVERIFY(!sdl::to_json(single).contains("id"));
        const auto& diffusers = models["tiny-diffusers"];
        expect(diffusers, "diffusers", "sd1", "fp16", true);
        QCOMPARE(diffusers.size_bytes, tree_size(kFolder));

        expect(models["sdxl.safetensors"], "single-file", "sdxl", "fp16", true);
        expect(models["sd2.safetensors"], "single-file", "sd2", "bf16", true);
        QCOMPARE(joined(models["sd2.safetensors"].missing), QString());
        expect(models["sd2-unet-only.safetensors"], "single-file", "sd2", "fp32", false);
        QVERIFY(joined(models["sd2-unet-only.safetensors"].missing).contains("text encoder weights"));
        expect(models["inpainting.safetensors"], "single-file", "sd1-inpainting", "fp32", true);
        expect(models["lora.safetensors"], "single-file", "lora", "mixed", true);
        expect(models["vae-ft-mse.safetensors"], "single-file", "vae", "fp32", true);
        expect(models["clip.safetensors"], "single-file", "text-encoder", "fp16", true);
        expect(models["junk.safetensors"], "single-file", "unknown", "", false);
        QVERIFY(joined(models["junk.safetensors"].missing).contains("junk.safetensors"));
        expect(models["old.ckpt"], "single-file", "pickle", "", false);
        QVERIFY(models["old.ckpt"].missing.empty());

        const auto& partial = models["partial"];
        expect(partial, "diffusers", "sd1", "fp16", false);
        for (const char* m : {"unet weights", "vae/config.json", "vae weights"})
            QVERIFY2(joined(partial.missing).contains(m), qPrintable(joined(partial.missing)));
        QVERIFY2(!joined(partial.missing).contains("text_encoder"), qPrintable(joined(partial.missing)));
    }

    void aModelGivenDirectly() {
        const auto found = sdl::find_models({kFolder, kSingle}, false);
        QCOMPARE(found.size(), size_t(2));
        expect(found[0], "diffusers", "sd1", "fp16", true);
        QCOMPARE(found[0].path, kFolder);
        expect(found[1], "single-file", "sd1", "fp16", true);
        QCOMPARE(found[1].path, kSingle);
    }

    void pipelineFamiliesFromConfigs() {
        const fs::path root = tmp("families");
        auto make = [&](const std::string& name, const std::string& cls, const nlohmann::json& unet) {
            fs::create_directories(root / name / "unet");
            std::ofstream(root / name / "model_index.json") << nlohmann::json{{"_class_name", cls}}.dump();
            std::ofstream(root / name / "unet" / "config.json") << unet.dump();
        };
        make("sd2", "StableDiffusionPipeline", {{"cross_attention_dim", 1024}, {"in_channels", 4}});
        make("sdxl", "StableDiffusionXLPipeline", {{"cross_attention_dim", 2048}});
        make("inpaint", "StableDiffusionInpaintPipeline", {{"cross_attention_dim", 768}, {"in_channels", 9}});
        make("other", "KandinskyPipeline", {{"cross_attention_dim", 768}});
        auto models = by_key(sdl::find_models({root.string()}, false));
        QCOMPARE(models["sd2"].family, std::string("sd2"));
        QCOMPARE(models["sdxl"].family, std::string("sdxl"));
        QCOMPARE(models["inpaint"].family, std::string("sd1-inpainting"));
        QCOMPARE(models["other"].family, std::string("unknown"));
        QVERIFY(!models["sd2"].complete);
    }

    void anAbsentFolderIsAnError() {
        try {
            sdl::find_models({tmp("nowhere").string()}, false);
            QFAIL("no error");
        } catch (const sdl::Error& e) {
            QVERIFY(QString(e.what()).contains("nowhere"));
        }
        // An absent hub cache lists nothing.
        qputenv("HF_HUB_CACHE", QByteArray::fromStdString(tmp("no-cache").string()));
        QVERIFY(sdl::find_models({}, true).empty());
    }
};

QTEST_GUILESS_MAIN(TestModelScan)
#include "test_model_scan.moc"
