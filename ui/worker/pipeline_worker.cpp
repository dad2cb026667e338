// Torch before Qt: Qt's `slots` and `signals` keyword macros break torch's headers.
#include "core/pipeline/compare.h"
#include "core/pipeline/image_metrics.h"
#include "core/pipeline/pipeline.h"
#include "core/pipeline/trace.h"
#include "core/pipeline/vae_compare.h"
#include "core/util/error.h"

#include "ui/worker/pipeline_worker.h"
#include "ui/worker/schedules.h"

#include <QElapsedTimer>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include <cstring>
#include <new>

namespace sdlui {

namespace {

FloatTensor toFloat(const torch::Tensor& t) {
    FloatTensor out;
    if (!t.defined())
        return out;
    const auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    for (auto s : c.sizes())
        out.shape << int(s);
    out.values.resize(int(c.numel()));
    std::memcpy(out.values.data(), c.data_ptr<float>(), size_t(c.numel()) * sizeof(float));
    return out;
}

torch::Tensor fromFloat(const FloatTensor& f) {
    std::vector<int64_t> shape(f.shape.begin(), f.shape.end());
    return torch::from_blob(const_cast<float*>(f.values.constData()), shape, torch::kFloat32).clone();
}

QVector<double> toDoubles(const torch::Tensor& t) {
    QVector<double> out;
    if (!t.defined())
        return out;
    const auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    for (int64_t i = 0; i < c.numel(); ++i)
        out << c.data_ptr<double>()[i];
    return out;
}

torch::Tensor doublesTensor(const QVector<double>& v) {
    std::vector<float> f(v.begin(), v.end());
    return torch::tensor(f, torch::kFloat32);
}

// [3, H, W] in [0, 1] -> an RGB image (deep copy).
QImage toImage(const torch::Tensor& chw) {
    const auto u8 = (chw.detach().to(torch::kCPU, torch::kFloat32).clamp(0, 1) * 255)
                        .round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();  // [H, W, 3]
    const int h = int(u8.size(0)), w = int(u8.size(1));
    QImage img(w, h, QImage::Format_RGB888);
    const uint8_t* src = u8.data_ptr<uint8_t>();
    for (int y = 0; y < h; ++y)
        std::memcpy(img.scanLine(y), src + size_t(y) * w * 3, size_t(w) * 3);
    return img;
}

// An image -> [1, 3, H, W] in [0, 1].
torch::Tensor fromImage(const QImage& image) {
    const QImage rgb = image.convertToFormat(QImage::Format_RGB888);
    const int h = rgb.height(), w = rgb.width();
    auto t = torch::empty({h, w, 3}, torch::kUInt8);
    for (int y = 0; y < h; ++y)
        std::memcpy(t.data_ptr<uint8_t>() + size_t(y) * w * 3, rgb.constScanLine(y), size_t(w) * 3);
    return t.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32).div(255.0);
}

QString errorText(const std::exception& e) {
    if (const auto* c10 = dynamic_cast<const c10::Error*>(&e))
        return QString::fromStdString(c10->what_without_backtrace());
    return QString::fromStdString(e.what());
}

// The VAE needs sides that are multiples of 8; large images are scaled down first because the VAE's
// mid-block attention grows with the square of the pixel count.
QImage fitForVae(const QImage& in, QString* note) {
    constexpr int kMaxSide = 768;
    constexpr int kMinSide = 16;
    if (in.width() < kMinSide || in.height() < kMinSide)
        throw sdl::Error(QString("The image is %1×%2; the VAE round trip needs at least %3×%3 pixels.")
                             .arg(in.width()).arg(in.height()).arg(kMinSide).toStdString());
    QImage img = in;
    QStringList steps;
    if (std::max(img.width(), img.height()) > kMaxSide) {
        img = img.scaled(kMaxSide, kMaxSide, Qt::KeepAspectRatio, Qt::SmoothTransformation);
        steps << QString("scaled from %1×%2 to %3×%4 (longest side at most %5)")
                     .arg(in.width()).arg(in.height()).arg(img.width()).arg(img.height()).arg(kMaxSide);
    }
    const int w = img.width() / 8 * 8, h = img.height() / 8 * 8;
    if (w != img.width() || h != img.height()) {
        steps << QString("centre-cropped from %1×%2 to %3×%4 (multiples of 8)")
                     .arg(img.width()).arg(img.height()).arg(w).arg(h);
        img = img.copy((img.width() - w) / 2, (img.height() - h) / 2, w, h);
    }
    *note = steps.isEmpty() ? QString() : "The image was " + steps.join(", then ") + ".";
    return img.convertToFormat(QImage::Format_RGB888);
}

QStringList tokenStrings(const sdl::ClipTokenizer& tokenizer, const QVector<qint64>& ids) {
    QStringList out;
    for (qint64 id : ids)
        out << QString::fromStdString(tokenizer.token_string(id));
    return out;
}

// Records a run into `run`. A generation announces every stage to the views as it happens; a
// baseline run (the same settings without LoRAs) only reports its progress, so the views keep the run
// they show.
class Observer : public sdl::PipelineObserver {
public:
    enum class Announce { Stages, ProgressOnly };
    Observer(PipelineWorker* worker, RunRecord& run, const sdl::ClipTokenizer& tokenizer,
             const std::atomic<quint64>& cancelledThrough, quint64 runId, Announce announce = Announce::Stages)
        : worker_(worker), run_(run), tokenizer_(tokenizer), cancelledThrough_(cancelledThrough), runId_(runId),
          stages_(announce == Announce::Stages) {}

    void on_tokens(const sdl::TokenizedPrompt& cond, const sdl::TokenizedPrompt& uncond) override {
        run_.condIds = QVector<qint64>(cond.input_ids.begin(), cond.input_ids.end());
        run_.uncondIds = QVector<qint64>(uncond.input_ids.begin(), uncond.input_ids.end());
        run_.condTokens = tokenStrings(tokenizer_, run_.condIds);
        if (stages_)
            emit worker_->tokensReady(run_.condTokens);
    }
    void on_text_embeddings(const torch::Tensor& uncondCond) override {
        run_.textEmbeddings = toFloat(uncondCond);
        if (stages_)
            emit worker_->textEmbeddingsReady(run_.textEmbeddings);
    }
    void on_initial_latents(const torch::Tensor& init) override { run_.init = toFloat(init[0]); }
    void on_timesteps(const torch::Tensor& timesteps, const torch::Tensor& sigmas) override {
        run_.timesteps = toDoubles(timesteps);
        run_.sigmas = toDoubles(sigmas);
        if (stages_)
            emit worker_->timestepsReady(run_.timesteps, run_.sigmas);
    }
    void on_step(const sdl::StepEvent& e) override {
        StepRecord r;
        r.index = e.index;
        r.total = e.total;
        r.timestep = e.timestep;
        r.sigma = e.sigma;
        r.latents = toFloat(e.latents[0]);
        if (e.noise_pred.defined())
            r.noisePred = toFloat(e.noise_pred[0]);
        if (e.pred_x0.defined()) {
            r.predX0 = toFloat(e.pred_x0[0]);
            r.preview = toImage(sdl::latent_preview(e.pred_x0.narrow(0, 0, 1))[0]);
        }
        r.attention = toFloat(e.attention);
        for (const auto& level : e.attention_levels)
            r.attentionLevels << toFloat(level);
        run_.steps.append(r);
        if (stages_)
            emit worker_->stepDone(r);
        else
            emit worker_->baselineProgress(e.index + 1, e.total);
    }
    void on_message(const std::string& text) override { emit worker_->message(QString::fromStdString(text)); }
    bool cancel_requested() const override { return runId_ <= cancelledThrough_.load(); }

private:
    PipelineWorker* worker_;
    RunRecord& run_;
    const sdl::ClipTokenizer& tokenizer_;
    const std::atomic<quint64>& cancelledThrough_;
    quint64 runId_;
    bool stages_;
};

// Keeps what the comparison view shows of each run as it forms (a cheap preview per step), and
// reports the progress.
class CompareObserver : public sdl::ComparisonObserver {
public:
    CompareObserver(PipelineWorker* worker, ComparisonRecord& record, const std::atomic<quint64>& cancelledThrough,
                    quint64 runId)
        : worker_(worker), record_(record), cancelledThrough_(cancelledThrough), runId_(runId) {}

    void on_run(int index, const std::string& /*label*/) override { run_ = index; }
    void on_step(const sdl::StepEvent& e) override {
        record_.runs[run_].previews << toImage(sdl::latent_preview(e.pred_x0.narrow(0, 0, 1))[0]);
        emit worker_->comparisonProgress(run_, int(record_.runs.size()), e.index + 1, e.total);
    }
    bool cancel_requested() const override { return runId_ <= cancelledThrough_.load(); }

private:
    PipelineWorker* worker_;
    ComparisonRecord& record_;
    const std::atomic<quint64>& cancelledThrough_;
    quint64 runId_;
    int run_ = 0;
};

QStringList toStrings(const std::vector<std::string>& v) {
    QStringList out;
    for (const auto& s : v)
        out << QString::fromStdString(s);
    return out;
}

std::vector<std::string> toStdStrings(const QStringList& list) {
    std::vector<std::string> out;
    for (const auto& s : list)
        out.push_back(s.toStdString());
    return out;
}

ModelSummary summarize(const sdl::StableDiffusion& sd, const QString& path) {
    const auto& info = sd.info();
    ModelSummary s;
    s.path = path;
    s.layout = QString::fromStdString(info.layout);
    s.device = QString::fromStdString(info.device);
    s.dtype = QString::fromStdString(info.dtype);
    s.dtypes = QString::fromStdString(info.precision.dtypes());
    s.precision = QString::fromStdString(info.precision.summary());
    s.textParams = info.text_params;
    s.unetParams = info.unet_params;
    s.vaeParams = info.vae_params;
    s.textHidden = info.text_hidden;
    s.textLayers = info.text_layers;
    s.scalingFactor = info.scaling_factor;
    s.loadSeconds = info.load_seconds;
    s.vae = QString::fromStdString(info.vae);
    s.vaePath = QString::fromStdString(info.vae_path);
    s.vaeSpelling = QString::fromStdString(info.vae_spelling);
    s.warnings = toStrings(info.warnings);
    s.nativeSize = info.native_size;
    return s;
}

QVector<LoraSummary> loraSummaries(const std::vector<sdl::LoraReport>& reports) {
    QVector<LoraSummary> out;
    for (const auto& r : reports) {
        LoraSummary l;
        l.path = QString::fromStdString(r.path);
        l.name = QString::fromStdString(r.name);
        l.format = QString::fromStdString(r.format);
        l.rank = r.rank;
        l.alpha = r.alpha;
        l.strength = r.strength;
        for (const auto& layer : r.layers)
            l.layers << LoraLayer{QString::fromStdString(layer.network), QString::fromStdString(layer.module),
                                  QString::fromStdString(layer.level), layer.relative_change};
        out << l;
    }
    return out;
}

QVector<LoraChoice> appliedLoras(const sdl::StableDiffusion& sd) {
    QVector<LoraChoice> out;
    for (const auto& r : sd.loras())
        out << LoraChoice{QString::fromStdString(r.path), r.strength};
    return out;
}

std::vector<sdl::LoraSpec> loraSpecs(const QVector<LoraChoice>& loras) {
    std::vector<sdl::LoraSpec> out;
    for (const auto& l : loras)
        out.push_back({l.path.toStdString(), l.strength});
    return out;
}

VaeComparison toComparison(const std::vector<sdl::VaeResult>& results) {
    VaeComparison c;
    for (const auto& r : results) {
        VaeOutcome o;
        o.label = QString::fromStdString(r.label);
        o.path = QString::fromStdString(r.path);
        o.spelling = QString::fromStdString(r.spelling);
        o.seconds = r.seconds;
        o.image = toImage(r.image);
        o.difference = toFloat(r.difference);
        o.psnr = r.psnr;
        o.ssim = r.ssim;
        o.maxError = r.max_error;
        o.meanError = r.mean_error;
        o.channelMean = QVector<double>(r.channel_mean.begin(), r.channel_mean.end());
        o.channelStd = QVector<double>(r.channel_std.begin(), r.channel_std.end());
        o.warnings = toStrings(r.warnings);
        c.vaes << o;
    }
    return c;
}

sdl::GenerateRequest toRequest(const GenerateSettings& settings) {
    sdl::GenerateRequest r;
    r.prompt = settings.prompt.toStdString();
    r.negative_prompt = settings.negativePrompt.toStdString();
    r.steps = settings.steps;
    r.guidance = settings.guidance;
    r.width = settings.width;
    r.height = settings.height;
    r.scheduler = settings.scheduler.toStdString();
    r.karras = settings.karras;
    r.seed = settings.seed;
    r.clip_skip = settings.clipSkip;
    r.record_attention = settings.recordAttention;
    return r;
}

} // namespace

struct PipelineWorker::State {
    std::unique_ptr<sdl::StableDiffusion> sd;
    QString modelPath;
    torch::Tensor imageLatents;  // [1, 4, h, w] of the last round trip
    // The last comparison's VAEs, kept so that decoding a generation with the same VAEs, or comparing
    // them on another image, does not read them again.
    QStringList comparedPaths;
    std::vector<sdl::LoadedVae> compared;

    sdl::StableDiffusion& model() {
        if (!sd)
            throw sdl::Error("No model is loaded. Open a diffusers folder or a single-file .safetensors model.");
        return *sd;
    }

    const std::vector<sdl::LoadedVae>& vaes(const QStringList& paths) {
        if (paths.isEmpty())
            throw sdl::Error("Choose at least one VAE to compare.");
        if (paths != comparedPaths || compared.empty()) {
            compared.clear();  // frees the old ones before the new ones arrive
            comparedPaths.clear();
            compared = sdl::load_vaes_for(model(), toStdStrings(paths));
            comparedPaths = paths;
        }
        return compared;
    }
};

PipelineWorker::PipelineWorker(QObject* parent) : QObject(parent), state_(std::make_unique<State>()) {
    registerResultTypes();
}

PipelineWorker::~PipelineWorker() = default;

quint64 PipelineWorker::nextRunId() { return ++issued_; }

void PipelineWorker::requestCancel() { cancelledThrough_.store(issued_.load()); }

// Runs one request: announces it, turns every exception into a failed() signal so the window can
// show it, and says when the worker is idle again.
template <typename F>
void PipelineWorker::guarded(const QString& operation, F&& body) {
    emit busyChanged(operation);
    try {
        body();
    } catch (const sdl::Cancelled&) {
        emit runCancelled();
    } catch (const std::bad_alloc&) {
        emit failed(operation, "Out of memory. Try a smaller image size, fewer images, or fp16 on a GPU.");
    } catch (const std::exception& e) {
        emit failed(operation, errorText(e));
    }
    emit busyChanged(QString());
}

void PipelineWorker::loadModel(const QString& path, const QString& device, const QString& dtype, const QString& vae,
                               const QVector<LoraChoice>& loras, const QStringList& embeddings) {
    emit busyChanged("Loading model");
    state_->sd.reset();  // frees the old weights before the new ones arrive
    state_->imageLatents = torch::Tensor();
    state_->compared.clear();
    state_->comparedPaths.clear();
    QString vaeError;
    try {
        sdl::RuntimeOptions options;
        options.device = device.isEmpty() ? "cpu" : device.toStdString();
        options.dtype = dtype == "auto" ? std::string() : dtype.toStdString();
        state_->sd = sdl::StableDiffusion::load(path.toStdString(), options);
        state_->modelPath = path;
        // Applied after the load rather than through RuntimeOptions::vae: a VAE that went missing
        // should cost the user that VAE, not the model.
        if (!vae.isEmpty()) {
            try {
                state_->sd->set_vae(vae.toStdString());
            } catch (const std::exception& e) {
                vaeError = errorText(e);
            }
        }
        emit modelLoaded(summarize(*state_->sd, path));
        if (!vaeError.isEmpty())
            emit vaeFailed(vae, vaeError);
        // Like the VAE, after the load: a LoRA or embedding that went missing costs only itself.
        guarded("Applying LoRAs", [&] { applyLoras(loras); });
        guarded("Loading embeddings", [&] { applyEmbeddings(embeddings); });
    } catch (const std::bad_alloc&) {
        emit modelFailed(path, "Out of memory while loading the model.");
    } catch (const std::exception& e) {
        emit modelFailed(path, errorText(e));
    }
    emit busyChanged(QString());
}

void PipelineWorker::setVae(const QString& path) {
    emit busyChanged("Changing the VAE");
    try {
        auto& sd = state_->model();
        sd.set_vae(path.toStdString());
        state_->imageLatents = torch::Tensor();  // encoded by the VAE that just left
        emit vaeChanged(summarize(sd, state_->modelPath));
    } catch (const std::bad_alloc&) {
        emit vaeFailed(path, "Out of memory while loading the VAE.");
    } catch (const std::exception& e) {
        emit vaeFailed(path, errorText(e));
    }
    emit busyChanged(QString());
}

// set_loras keeps what was applied when a file fails: adding the files one at a time to those that
// work finds every bad one, and only a failure costs the extra merges.
void PipelineWorker::applyLoras(const QVector<LoraChoice>& loras) {
    auto& sd = state_->model();
    try {
        sd.set_loras(loraSpecs(loras));
    } catch (const std::exception&) {
        QVector<LoraChoice> good;
        for (const auto& l : loras) {
            try {
                sd.set_loras(loraSpecs(good + QVector<LoraChoice>{l}));
                good << l;
            } catch (const std::exception& e) {
                emit loraFailed(l.path, errorText(e));
            }
        }
        sd.set_loras(loraSpecs(good));
    }
    emit lorasChanged(loraSummaries(sd.loras()));
}

void PipelineWorker::applyEmbeddings(const QStringList& paths) {
    auto& sd = state_->model();
    try {
        sd.set_embeddings(toStdStrings(paths));
    } catch (const std::exception&) {
        QStringList good;
        for (const auto& p : paths) {
            try {
                sd.set_embeddings(toStdStrings(good + QStringList{p}));
                good << p;
            } catch (const std::exception& e) {
                emit textualInversionFailed(p, errorText(e));
            }
        }
        sd.set_embeddings(toStdStrings(good));
    }
    QVector<TextualInversion> loaded;
    for (const auto& e : sd.embeddings())
        loaded << TextualInversion{QString::fromStdString(e.path), QString::fromStdString(e.trigger), e.vectors,
                                   QString::fromStdString(e.format)};
    emit textualInversionsChanged(loaded);
}

void PipelineWorker::setLoras(const QVector<LoraChoice>& loras) {
    guarded("Applying LoRAs", [&] { applyLoras(loras); });
}

void PipelineWorker::setEmbeddings(const QStringList& paths) {
    guarded("Loading embeddings", [&] { applyEmbeddings(paths); });
}

void PipelineWorker::generate(const GenerateSettings& settings, quint64 runId) {
    RunRecord run;
    run.settings = settings;
    guarded("Generating", [&] {
        auto& sd = state_->model();
        const sdl::GenerateRequest r = toRequest(settings);
        run.settings.vae = QString::fromStdString(sd.info().vae);
        run.settings.loras = appliedLoras(sd);
        emit runStarted(run.settings);
        QElapsedTimer timer;
        timer.start();
        Observer observer(this, run, sd.tokenizer(), cancelledThrough_, runId);
        const torch::Tensor images = sd.generate(r, observer);  // [1, 3, H, W]
        const auto values = images[0].to(torch::kFloat32);
        if (!torch::isfinite(values).all().item<bool>())
            throw sdl::Error("The image contains NaN or infinite values (often fp16 overflow): try fp32.");
        run.imageData = toFloat(values);
        run.image = toImage(values);
        run.seconds = timer.elapsed() / 1000.0;
        emit runFinished(run);
    });
}

void PipelineWorker::generateWithoutLoras(const GenerateSettings& settings, quint64 runId) {
    guarded("Generating without LoRAs", [&] {
        auto& sd = state_->model();
        const QVector<LoraChoice> applied = appliedLoras(sd);
        if (applied.isEmpty())
            throw sdl::Error("No LoRA is applied: there is nothing to leave out. Add one in the settings (LoRAs).");
        RunRecord run;
        run.settings = settings;
        run.settings.recordAttention = true;
        run.settings.vae = QString::fromStdString(sd.info().vae);
        run.settings.loras.clear();
        QElapsedTimer timer;
        timer.start();
        sd.set_loras({});
        try {
            Observer observer(this, run, sd.tokenizer(), cancelledThrough_, runId, Observer::Announce::ProgressOnly);
            const torch::Tensor images = sd.generate(toRequest(run.settings), observer);  // [1, 3, H, W]
            run.imageData = toFloat(images[0]);
            run.image = toImage(images[0]);
        } catch (...) {
            sd.set_loras(loraSpecs(applied));
            throw;
        }
        sd.set_loras(loraSpecs(applied));
        run.seconds = timer.elapsed() / 1000.0;
        emit baselineReady(run);
    });
}

void PipelineWorker::compare(const GenerateSettings& base, const QString& vary, const QStringList& values,
                             quint64 runId) {
    guarded("Comparing", [&] {
        auto& sd = state_->model();
        std::vector<std::string> v;
        for (const auto& value : values)
            v.push_back(value.trimmed().toStdString());
        GenerateSettings settings = base;
        settings.recordAttention = false;
        const auto comparison = sdl::make_comparison(toRequest(settings), vary.toStdString(), v);
        ComparisonRecord record;
        record.vary = vary;
        for (size_t i = 0; i < comparison.requests.size(); ++i) {
            const auto& q = comparison.requests[i];
            ComparisonRun run;
            run.label = QString::fromStdString(comparison.labels[i]);
            run.settings = settings;
            run.settings.prompt = QString::fromStdString(q.prompt);
            run.settings.guidance = q.guidance;
            run.settings.scheduler = QString::fromStdString(q.scheduler);
            run.settings.steps = q.steps;
            run.settings.vae = QString::fromStdString(sd.info().vae);
            run.settings.loras = appliedLoras(sd);
            if (i < comparison.lora_strengths.size() && !run.settings.loras.isEmpty())
                run.settings.loras.first().strength = comparison.lora_strengths[i];
            record.runs << run;
        }
        CompareObserver observer(this, record, cancelledThrough_, runId);
        const auto result = sdl::run_comparison(sd, comparison, observer);
        for (int i = 0; i < record.runs.size(); ++i) {
            auto& run = record.runs[i];
            run.image = toImage(result.images[size_t(i)]);
            run.imageDifference = result.image_difference[size_t(i)];
            run.seconds = result.seconds[size_t(i)];
            run.latentDifference = QVector<double>(result.latent_difference[size_t(i)].begin(),
                                                   result.latent_difference[size_t(i)].end());
            for (const auto& map : result.difference_maps[size_t(i)])
                run.stepDifference << toFloat(map);
        }
        emit comparisonReady(record);
    });
}

void PipelineWorker::computeEmbeddings(const QString& prompt, const QString& comparePrompt) {
    guarded("Encoding prompt", [&] {
        auto& sd = state_->model();
        EmbeddingResult r;
        r.prompt = prompt;
        const auto tp = sd.tokenizer().encode(prompt.toStdString());
        for (size_t i = 0; i < tp.input_ids.size(); ++i) {
            r.tokens << QString::fromStdString(sd.tokenizer().token_string(tp.input_ids[i]));
            r.mask << int(tp.attention_mask[i]);
        }
        for (const auto& h : sd.text_hidden_states(prompt.toStdString()))
            r.layers << toFloat(h[0]);
        if (!comparePrompt.isEmpty()) {
            r.comparePrompt = comparePrompt;
            for (const auto& h : sd.text_hidden_states(comparePrompt.toStdString()))
                r.compareLayers << toFloat(h[0]);
        }
        emit embeddingsReady(r);
    });
}

void PipelineWorker::roundTrip(const QImage& image) {
    guarded("VAE round trip", [&] {
        auto& sd = state_->model();
        if (image.isNull())
            throw sdl::Error("The image could not be read (empty or unsupported format).");
        RoundTripResult r;
        r.original = fitForVae(image, &r.adjustment);
        const auto x = fromImage(r.original);                   // [1, 3, H, W] in [0, 1]
        const auto encoded = sd.encode_image(x * 2.0 - 1.0);
        const auto y = sd.decode_latents(encoded.latents).to(torch::kFloat32);  // [1, 3, H, W]
        state_->imageLatents = encoded.latents.detach().clone();
        r.reconstruction = toImage(y[0]);
        const auto diff = (x - y).abs();
        r.difference = toFloat(diff[0].mean(0));
        r.psnr = sdl::psnr(x, y);
        r.ssim = sdl::ssim(x, y.clamp(0, 1));
        r.maxError = diff.max().item<double>() * 255.0;
        r.latents = toFloat(encoded.latents[0]);
        r.compression = double(x.numel()) / double(encoded.latents.numel());
        emit roundTripReady(r);
    });
}

void PipelineWorker::compareVaes(const QImage& image, const QStringList& vaes) {
    guarded("Comparing VAEs", [&] {
        if (image.isNull())
            throw sdl::Error("The image could not be read (empty or unsupported format).");
        QString adjustment;
        const QImage original = fitForVae(image, &adjustment);
        const auto x = fromImage(original) * 2.0 - 1.0;  // [1, 3, H, W] in [-1, 1]
        VaeComparison c = toComparison(sdl::compare_vae_round_trips(state_->vaes(vaes), x));
        c.reference = original;
        c.adjustment = adjustment;
        emit vaeComparisonReady(c);
    });
}

void PipelineWorker::decodeWithVaes(const FloatTensor& latents, const QStringList& vaes) {
    guarded("Comparing VAEs", [&] {
        if (latents.shape.size() != 3 || latents.shape[0] != 4)
            throw sdl::Error("Decoding with each VAE needs a generation's final latents [4, h, w]: generate first.");
        const auto z = fromFloat(latents).unsqueeze(0);  // [1, 4, h, w]
        VaeComparison c = toComparison(sdl::decode_with_vaes(state_->vaes(vaes), z));
        c.fromLatents = true;
        if (!c.vaes.isEmpty())
            c.reference = c.vaes.first().image;
        emit vaeComparisonReady(c);
    });
}

void PipelineWorker::noiseProgression(const QString& scheduler, int steps, quint64 seed) {
    guarded("Noise progression", [&] {
        auto& sd = state_->model();
        if (!state_->imageLatents.defined())
            throw sdl::Error("The noise progression noises an image's latents: open an image in the VAE round trip first.");
        ProgressionResult r;
        r.scheduler = scheduler;
        r.steps = steps;
        // The article's 0, 10, ..., 50 of 50 steps; the last index a schedule has is steps - 1.
        std::vector<int> at;
        for (int i = 0; i <= 5; ++i) {
            const int k = std::min(steps - 1, i * steps / 5);
            if (at.empty() || at.back() != k)
                at.push_back(k);
        }
        const auto noise = sdl::seeded_randn(state_->imageLatents.sizes(), seed);
        const auto noised = sd.noise_progression(state_->imageLatents, noise, scheduler.toStdString(), steps, at);
        const Schedule schedule = computeSchedule(scheduler, steps);
        for (size_t i = 0; i < noised.size(); ++i) {
            r.atSteps << at[i];
            r.timesteps << schedule.timesteps.value(at[i]);
            r.images << toImage(sd.decode_latents(noised[i])[0]);
        }
        emit progressionReady(r);
    });
}

void PipelineWorker::unetProbe(int step, int steps, const QString& prompt, const QString& scheduler, double guidance,
                               quint64 seed) {
    guarded("U-Net step", [&] {
        auto& sd = state_->model();
        if (!state_->imageLatents.defined())
            throw sdl::Error("The U-Net step denoises an image's latents: open an image in the VAE round trip first.");
        const auto noise = sdl::seeded_randn(state_->imageLatents.sizes(), seed);
        const auto p = sd.unet_step_probe(state_->imageLatents, noise, prompt.toStdString(), scheduler.toStdString(),
                                          steps, step, guidance);
        ProbeResult r;
        r.step = step;
        r.steps = steps;
        r.prompt = prompt;
        r.timestep = p.timestep;
        r.sigma = p.sigma;
        r.noisy = toFloat(p.noisy_latents[0]);
        r.noisePred = toFloat(p.noise_pred[0]);
        r.noisyDecoded = toImage(sd.decode_latents(p.noisy_latents)[0]);
        r.naiveDecoded = toImage(sd.decode_latents(p.naive_x0)[0]);
        r.predX0Decoded = toImage(sd.decode_latents(p.pred_x0)[0]);
        emit probeReady(r);
    });
}

void PipelineWorker::decodeLatents(int tag, const FloatTensor& latents) {
    guarded("Decoding", [&] {
        auto& sd = state_->model();
        if (latents.shape.size() != 3 || latents.shape[0] != 4)
            throw sdl::Error("Decoding needs latents of shape [4, h, w].");
        emit latentsDecoded(tag, toImage(sd.decode_latents(fromFloat(latents).unsqueeze(0))[0]));
    });
}

void PipelineWorker::saveTrace(const QString& path, const RunRecord& run) {
    guarded("Saving run", [&] {
        if (run.steps.isEmpty())
            throw sdl::Error("There is no run to save yet: generate an image first.");
        sdl::Trace t;
        auto stack = [&](FloatTensor StepRecord::*member) {
            std::vector<torch::Tensor> parts;
            for (const auto& s : run.steps)
                if (!(s.*member).isEmpty())
                    parts.push_back(fromFloat(s.*member));
            return parts.size() == size_t(run.steps.size()) ? torch::stack(parts) : torch::Tensor();
        };
        t.init = fromFloat(run.init).unsqueeze(0);
        t.steps = stack(&StepRecord::latents);
        t.noise_pred = stack(&StepRecord::noisePred);
        t.pred_x0 = stack(&StepRecord::predX0);
        t.timesteps = doublesTensor(run.timesteps);
        if (!run.sigmas.isEmpty())
            t.sigmas = doublesTensor(run.sigmas);
        if (!run.textEmbeddings.isEmpty())
            t.text_embeddings = fromFloat(run.textEmbeddings);
        if (run.condIds.size() == run.uncondIds.size() && !run.condIds.isEmpty()) {
            std::vector<int64_t> ids(run.uncondIds.begin(), run.uncondIds.end());
            ids.insert(ids.end(), run.condIds.begin(), run.condIds.end());
            t.input_ids = torch::tensor(ids, torch::kInt64).reshape({2, -1});
        }
        if (!run.imageData.isEmpty())
            t.image = fromFloat(run.imageData).unsqueeze(0);
        t.attention = stack(&StepRecord::attention);
        const auto& s = run.settings;
        t.settings = {{"prompt", s.prompt.toStdString()},
                      {"negative_prompt", s.negativePrompt.toStdString()},
                      {"scheduler", s.scheduler.toStdString()},
                      {"karras", s.karras ? "true" : "false"},
                      {"steps", std::to_string(s.steps)},
                      {"guidance", QString::number(s.guidance).toStdString()},
                      {"seed", std::to_string(s.seed)},
                      {"width", std::to_string(s.width)},
                      {"height", std::to_string(s.height)},
                      {"clip_skip", std::to_string(s.clipSkip)},
                      {"model", s.model.toStdString()}};
        // As sdlens-cli generate writes them: [{"path", "strength"}, ...].
        if (!s.loras.isEmpty()) {
            QJsonArray loras;
            for (const auto& l : s.loras)
                loras.append(QJsonObject{{"path", l.path}, {"strength", l.strength}});
            t.settings["loras"] = QJsonDocument(loras).toJson(QJsonDocument::Compact).toStdString();
        }
        sdl::write_trace(path.toStdString(), t);
        emit traceSaved(path);
    });
}

void PipelineWorker::openTrace(const QString& path) {
    guarded("Opening run", [&] {
        const sdl::Trace t = sdl::read_trace(path.toStdString());
        RunRecord run;
        run.fromTrace = true;
        auto setting = [&](const char* key, const QString& fallback = QString()) {
            const auto it = t.settings.find(key);
            return it == t.settings.end() ? fallback : QString::fromStdString(it->second);
        };
        auto& s = run.settings;
        s.prompt = setting("prompt");
        s.negativePrompt = setting("negative_prompt");
        s.scheduler = setting("scheduler", s.scheduler);
        s.karras = setting("karras") == "true";
        s.steps = setting("steps", QString::number(t.steps.size(0))).toInt();
        s.guidance = setting("guidance", "7.5").toDouble();
        s.seed = setting("seed", "0").toULongLong();
        s.clipSkip = setting("clip_skip", "1").toInt();
        s.model = setting("model");
        for (const QJsonValue& l : QJsonDocument::fromJson(setting("loras").toUtf8()).array())
            s.loras << LoraChoice{l["path"].toString(), l["strength"].toDouble(1.0)};
        run.init = toFloat(t.init[0]);
        run.timesteps = toDoubles(t.timesteps);
        run.sigmas = toDoubles(t.sigmas);
        if (t.text_embeddings.defined())
            run.textEmbeddings = toFloat(t.text_embeddings);
        if (t.input_ids.defined() && t.input_ids.dim() == 2 && t.input_ids.size(0) == 2) {
            const auto ids = t.input_ids.to(torch::kInt64).contiguous();
            const int64_t* p = ids.data_ptr<int64_t>();
            const int n = int(ids.size(1));
            run.uncondIds = QVector<qint64>(p, p + n);
            run.condIds = QVector<qint64>(p + n, p + 2 * n);
            // Without a model the bundled vocabulary names the tokens: every SD 1.x model uses it.
            static const sdl::ClipTokenizer bundled = sdl::ClipTokenizer::bundled();
            run.condTokens = tokenStrings(state_->sd ? state_->sd->tokenizer() : bundled, run.condIds);
        }
        const int count = int(t.steps.size(0));
        for (int i = 0; i < count; ++i) {
            StepRecord r;
            r.index = i;
            r.total = count;
            r.timestep = run.timesteps.value(i);
            r.sigma = run.sigmas.value(i);
            r.latents = toFloat(t.steps[i]);
            if (t.noise_pred.defined() && t.noise_pred.size(0) == count)
                r.noisePred = toFloat(t.noise_pred[i]);
            if (t.pred_x0.defined() && t.pred_x0.size(0) == count) {
                r.predX0 = toFloat(t.pred_x0[i]);
                r.preview = toImage(sdl::latent_preview(t.pred_x0.narrow(0, i, 1).to(torch::kFloat32))[0]);
            }
            if (t.attention.defined() && t.attention.size(0) == count)
                r.attention = toFloat(t.attention[i]);
            run.steps << r;
        }
        if (t.image.defined()) {
            run.imageData = toFloat(t.image[0]);
            run.image = toImage(t.image[0]);
        }
        const int h = run.init.dim(1) * 8, w = run.init.dim(2) * 8;
        s.width = setting("width", QString::number(run.image.isNull() ? w : run.image.width())).toInt();
        s.height = setting("height", QString::number(run.image.isNull() ? h : run.image.height())).toInt();
        emit traceOpened(run);
    });
}

} // namespace sdlui
