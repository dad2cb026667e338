// VAE layouts: both diffusers spellings of the mid-block attention (plain, fp16 variant, sharded,
// 1x1-convolution projections) and the original names (standalone, with or without the
// first_stage_model. prefix, inside a checkpoint) all give the same tensors as tests/data's VAE;
// anything that is not a VAE is refused saying what it looks like.
#include "core/io/model_files.h"
#include "core/io/vae_files.h"
#include "core/util/error.h"
#include "fake_hub.h"
#include "fixtures/expect_error.h"
#include "fixtures/vae_fixtures.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cstring>
#include <fstream>

namespace fs = std::filesystem;
using namespace vae_fixtures;
using sdl_test::expect_error;

namespace {

// Same names, shapes, dtypes and bytes as the reference folder's VAE.
void same_tensors(const sdl::ComponentFiles& got) {
    const auto want = sdl::open_model_files(data("tiny-sd")).vae;
    QCOMPARE(got.tensors.size(), want.tensors.size());
    for (const auto& [name, w] : want.tensors) {
        const auto it = got.tensors.find(name);
        QVERIFY2(it != got.tensors.end(), ("missing " + name).c_str());
        QVERIFY2(it->second.shape == w.shape, ("shape of " + name).c_str());
        QCOMPARE(it->second.nbytes, w.nbytes);
        if (it->second.dtype == w.dtype)
            QVERIFY2(std::memcmp(it->second.data, w.data, w.nbytes) == 0, ("bytes of " + name).c_str());
    }
}

std::string json_text(const nlohmann::json& j) { return j.dump(); }

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

} // namespace

class TestVaeFiles : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string dir(const std::string& name) const { return tmp_.filePath(QString::fromStdString(name)).toStdString(); }

private slots:
    void todaysNamesAreDiffusers() {
        const auto m = sdl::open_model_files(data("tiny-sd"));
        QCOMPARE(QString::fromStdString(m.vae.spelling), QString("diffusers"));
    }

    void names2022InAFolder() {
        for (bool conv : {false, true}) {
            const std::string d = dir(conv ? "old-conv" : "old");
            copy_model(d, to_2022_names(conv));
            const auto m = sdl::open_model_files(d);
            QCOMPARE(QString::fromStdString(m.vae.spelling), QString("diffusers (2022 attention names)"));
            same_tensors(m.vae);
        }
    }

    void names2022InAnFp16Variant() {
        const std::string d = dir("old-fp16");
        copy_model(d, to_2022_names(false), "diffusion_pytorch_model.fp16.safetensors");
        const auto m = sdl::open_model_files(d);
        QCOMPARE(QString::fromStdString(m.vae.spelling), QString("diffusers (2022 attention names)"));
        same_tensors(m.vae);
    }

    void names2022Sharded() {
        const std::string d = dir("old-sharded");
        copy_model(d);
        const std::string vae = d + "/vae/";
        const std::string src = vae + "diffusion_pytorch_model.safetensors";
        nlohmann::json map = nlohmann::json::object();
        // Shard 1: the encoder; shard 2: the rest, both renamed.
        const auto rename = to_2022_names(false);
        for (int shard : {1, 2}) {
            const std::string name = "diffusion_pytorch_model-0000" + std::to_string(shard) + "-of-00002.safetensors";
            rewrite(src, vae + name, [&](const sdl::TensorView& v) {
                const bool encoder = v.name.rfind("encoder.", 0) == 0;
                if (encoder != (shard == 1))
                    return Renamed{};
                Renamed r = rename(v);
                map[r.name] = name;
                return r;
            });
        }
        fs::remove(src);
        write_text(vae + "diffusion_pytorch_model.safetensors.index.json", json_text({{"weight_map", map}}));
        const auto m = sdl::open_model_files(d);
        QCOMPARE(QString::fromStdString(m.vae.spelling), QString("diffusers (2022 attention names)"));
        same_tensors(m.vae);
    }

    void mixedSpellingsAreRefused() {
        const std::string d = dir("mixed");
        copy_model(d, [](const sdl::TensorView& v) {
            // Only the encoder renamed: the decoder keeps today's names.
            if (v.name.rfind("encoder.", 0) == 0)
                return to_2022_names(false)(v);
            return Renamed{v.name, v.shape};
        });
        expect_error([&] { sdl::open_model_files(d); }, {"mixes the 2022 attention names", "mid_block.attentions.0."});
    }

    void bothSpellingsOfOneWeightAreRefused() {
        const std::string d = dir("twice");
        copy_model(d);
        const std::string src = d + "/vae/diffusion_pytorch_model.safetensors";
        const std::string dup = d + "/vae/dup.safetensors";
        const auto f = sdl::SafetensorsFile::open(src);
        const auto& q = f->at("encoder.mid_block.attentions.0.to_q.weight");
        std::vector<sdl::TensorBlob> blobs;
        for (const auto& [k, v] : f->tensors())
            blobs.push_back({k, v.dtype, v.shape, v.data, v.nbytes});
        blobs.push_back({"encoder.mid_block.attentions.0.query.weight", q.dtype, q.shape, q.data, q.nbytes});
        sdl::write_safetensors(dup, blobs);
        fs::rename(dup, src);
        expect_error([&] { sdl::open_model_files(d); }, {"encoder.mid_block.attentions.0.to_q.weight", "twice"});
    }

    void standaloneOriginalNames() {
        for (const std::string prefix : {"", "first_stage_model."}) {
            const std::string f = dir("vae-ft-" + std::to_string(prefix.size()) + ".safetensors");
            write_original_vae(f, prefix);
            const auto v = sdl::open_vae_files(f);
            QCOMPARE(QString::fromStdString(v.source),
                     QString(prefix.empty() ? "VAE file" : "single-file checkpoint"));
            QCOMPARE(v.spelling, sdl::VaeSpelling::Original);
            same_tensors(v.files);
            // The EMA counters and the loss network are training state, listed, not loaded.
            QCOMPARE(v.files.ignored.size(), size_t(3));
            QCOMPARE(v.files.config.value("scaling_factor", 0.0), 0.18215);
        }
    }

    void unknownOriginalKeyIsNamed() {
        const std::string f = dir("vae-extra.safetensors");
        rewrite(data("tiny-sd.single-file.safetensors"), f,
                [](const sdl::TensorView& v) {
                    const std::string p = "first_stage_model.";
                    return v.name.rfind(p, 0) == 0 ? Renamed{v.name.substr(p.size()), v.shape} : Renamed{};
                },
                {{"encoder.mid.attn_1.gamma", sdl::DType::F32, {64}}});
        expect_error([&] { sdl::open_vae_files(f); }, {f, "encoder.mid.attn_1.gamma"});
    }

    void vaeOfACheckpointAndOfAModelFolder() {
        const auto single = sdl::open_vae_files(data("tiny-sd.single-file.safetensors"));
        QCOMPARE(QString::fromStdString(single.source), QString("single-file checkpoint"));
        same_tensors(single.files);
        const auto folder = sdl::open_vae_files(data("tiny-sd"));
        QCOMPARE(QString::fromStdString(folder.source), QString("diffusers model folder"));
        same_tensors(folder.files);
        const auto vae_folder = sdl::open_vae_files(data("tiny-sd/vae"));
        QCOMPARE(QString::fromStdString(vae_folder.source), QString("diffusers VAE folder"));
        QCOMPARE(QString::fromStdString(vae_folder.name), QString("vae"));
        QVERIFY(vae_folder.warnings.empty());
        same_tensors(vae_folder.files);
    }

    void loneDiffusersFileInEitherSpelling() {
        const std::string f = dir("lone-old.safetensors");
        rewrite(data("tiny-sd/vae/diffusion_pytorch_model.safetensors"), f, to_2022_names(true));
        const auto v = sdl::open_vae_files(f);
        QCOMPARE(v.spelling, sdl::VaeSpelling::Diffusers2022);
        same_tensors(v.files);
    }

    // stabilityai/sd-vae-ft-mse as huggingface_hub caches it: config and weights at the top level.
    void vaeRepoInTheHubCache() {
        const std::string cache = dir("hub");
        const auto snapshot = sdl::test::add_hub_snapshot(cache, "stabilityai", "sd-vae-ft-mse", data("tiny-sd/vae"),
                                                          std::string(40, 'a'));
        qputenv("HF_HUB_CACHE", QByteArray::fromStdString(cache));
        const auto v = sdl::open_vae_files("stabilityai/sd-vae-ft-mse");
        QCOMPARE(QString::fromStdString(v.name), QString("stabilityai/sd-vae-ft-mse"));
        QCOMPARE(QString::fromStdString(v.source), QString("diffusers VAE folder"));
        same_tensors(v.files);
        fs::remove(fs::path(cache) / "models--stabilityai--sd-vae-ft-mse" / "blobs" /
                   fs::read_symlink(snapshot / "diffusion_pytorch_model.safetensors").filename());
        expect_error([&] { sdl::open_vae_files("stabilityai/sd-vae-ft-mse"); },
                     {"diffusion_pytorch_model.safetensors", "missing", "huggingface-cli download stabilityai/sd-vae-ft-mse"});
        expect_error([&] { sdl::open_vae_files("stabilityai/absent-vae"); },
                     {"huggingface-cli download stabilityai/absent-vae"});
        qunsetenv("HF_HUB_CACHE");
    }

    void otherFamilyScalingFactorWarns() {
        const std::string d = dir("sdxl-vae");
        copy_vae_folder(d, {{"scaling_factor", 0.13025}});
        const auto v = sdl::open_vae_files(d);
        QCOMPARE(v.warnings.size(), size_t(1));
        QVERIFY(v.warnings[0].find("0.13025") != std::string::npos);
        QVERIFY(v.warnings[0].find("another model family") != std::string::npos);
    }

    void notAVaeIsRefusedSayingWhatItIs() {
        expect_error([&] { sdl::open_vae_files(data("tiny-sd/unet/diffusion_pytorch_model.safetensors")); },
                     {"cannot be used as a VAE", "a U-Net"});
        expect_error([&] { sdl::open_vae_files(data("tiny-sd/text_encoder/model.safetensors")); },
                     {"a CLIP text encoder"});
        expect_error([&] { sdl::open_vae_files(data("tiny-sd/unet")); }, {"UNet2DConditionModel", "not a VAE"});
        const std::string lora = dir("lora.safetensors");
        const float w[4] = {};
        sdl::write_safetensors(lora, {{"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                                       sdl::DType::F32, {2, 2}, w, sizeof w}});
        expect_error([&] { sdl::open_vae_files(lora); }, {"a LoRA"});
        const std::string pickle = dir("vae.ckpt");
        write_text(pickle, "PK\x03\x04 not really");
        expect_error([&] { sdl::open_vae_files(pickle); }, {"pickle"});
        expect_error([&] { sdl::open_vae_files(dir("absent.safetensors")); }, {"no such VAE file or folder"});
        const std::string empty_dir = dir("empty");
        fs::create_directories(empty_dir);
        expect_error([&] { sdl::open_vae_files(empty_dir); }, {"not a VAE folder"});
    }

    void truncatedVaeFileIsRefused() {
        const std::string f = dir("truncated.safetensors");
        write_original_vae(f, "");
        fs::resize_file(f, fs::file_size(f) / 2);
        expect_error([&] { sdl::open_vae_files(f); }, {f});
    }

    void otherLatentChannelsAreRefused() {
        const std::string d = dir("sd3-vae");
        copy_vae_folder(d, {{"latent_channels", 16}});
        expect_error([&] { sdl::open_vae_files(d); }, {"16 latent channels", "SD 1.x models use 4"});
    }
};

QTEST_APPLESS_MAIN(TestVaeFiles)
#include "test_vae_files.moc"
