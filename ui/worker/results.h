#pragma once
// Plain values that cross the thread boundary between the pipeline worker and the widgets. No torch
// here: the worker copies every tensor into these before emitting, so a widget never shares memory
// with a tensor the worker may still be writing, and widget code compiles without the torch headers.
#include <QImage>
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <QVector>

#include <utility>

namespace sdlui {

// A dense float32 array, row-major, with its shape.
struct FloatTensor {
    QVector<int> shape;
    QVector<float> values;

    bool isEmpty() const { return values.isEmpty(); }
    int dim(int i) const { return i < shape.size() ? shape[i] : 0; }
    // The sub-array at index i of the first dimension ([4, h, w] -> channel i as [h, w]).
    FloatTensor slice(int i) const;
    std::pair<float, float> range() const;  // (min, max); (0, 0) when empty
};

struct ModelSummary {
    QString path;
    QString layout;   // "diffusers" or "single-file"
    QString device;
    QString dtype;        // the U-Net's
    QString dtypes;       // every network's: "bf16", or "U-Net bf16 · VAE encode bf16 · VAE decode fp32"
    QString precision;    // and why: "U-Net bf16 (measured 1.93x faster), ..., cached 2026-12-01"
    qint64 textParams = 0, unetParams = 0, vaeParams = 0;
    int textHidden = 0;
    int textLayers = 0;
    double scalingFactor = 0.18215;
    double loadSeconds = 0;
    QString vae;          // the VAE in use: empty for the model's own, else its name
    QString vaePath;      // where that VAE came from; empty for the model's own
    QString vaeSpelling;  // how its keys were written: "diffusers", "original (CompVis)", ...
    QStringList warnings; // from loading the model or its VAE
    int nativeSize = 512; // the image side the U-Net was trained for (ModelInfo::native_size)
};

// A LoRA to apply, as the settings dock asks for it.
struct LoraChoice {
    QString path;
    double strength = 1.0;
};

// Where one layer of an applied LoRA acts and how much it changes the weight there.
struct LoraLayer {
    QString network;        // "text_encoder" or "unet"
    QString module;         // diffusers module name: "down_blocks.1.attentions.0.proj_in"
    QString level;          // U-Net resolution level "down 0".."up 3", "mid"; empty for the text encoder
    double relativeChange = 0;  // ||delta W|| / ||W|| at the applied strength
};

// A LoRA the model has applied.
struct LoraSummary {
    QString path;
    QString name;    // the file's stem
    QString format;  // "kohya", "peft", ...
    qint64 rank = 0;
    double alpha = 0;
    double strength = 1.0;
    QVector<LoraLayer> layers;
};

// A textual-inversion embedding the model has loaded.
struct TextualInversion {
    QString path;
    QString trigger;  // the word that stands for it in prompts
    int vectors = 0;  // how many token positions it takes
    QString format;
};

struct GenerateSettings {
    QString prompt;
    QString negativePrompt;
    QString scheduler = QStringLiteral("lms");
    bool karras = false;
    int steps = 50;
    double guidance = 7.5;
    quint64 seed = 0;
    int width = 512;
    int height = 512;
    int clipSkip = 1;
    bool recordAttention = true;  // per-token cross-attention maps in every StepRecord
    QString model;  // the model's file or folder name, for the PNG parameters
    // What the model had when the run was made (filled by the worker), for the PNG parameters: the
    // VAE's name (empty: the model's own) and the LoRAs with their strengths.
    QString vae;
    QVector<LoraChoice> loras;

    // The "parameters" text A1111-compatible tools read from a PNG.
    QString a1111Parameters() const;
};

struct StepRecord {
    int index = 0;
    int total = 0;
    double timestep = 0;
    double sigma = 0;
    FloatTensor latents;    // [4, h, w] after the scheduler step
    FloatTensor noisePred;  // [4, h, w] guided prediction
    FloatTensor predX0;     // [4, h, w] the scheduler's predicted clean latents
    QImage preview;         // latent-space RGB approximation of predX0, at latent resolution
    // When recorded: the conditional pass's cross-attention per prompt token, averaged over heads and
    // layers, at latent resolution [77, h, w]; and per resolution level, finest first, [77, h_l, w_l].
    FloatTensor attention;
    QVector<FloatTensor> attentionLevels;
};

// Everything a generation produced: what the step-through view scrubs and what a trace file holds.
struct RunRecord {
    GenerateSettings settings;
    QVector<qint64> condIds, uncondIds;  // 77 each
    QStringList condTokens;              // the token string of each of condIds
    FloatTensor textEmbeddings;          // [2, 77, D] (uncond, cond)
    FloatTensor init;                    // [4, h, w] initial noise, before init_noise_sigma
    QVector<double> timesteps;           // [S]
    QVector<double> sigmas;              // [S + 1], empty for schedulers without sigmas
    QVector<StepRecord> steps;
    FloatTensor imageData;               // [3, H, W] in [0, 1]
    QImage image;
    bool fromTrace = false;
    double seconds = 0;
};

struct EmbeddingResult {
    QString prompt;
    QStringList tokens;               // 77 token strings (padding included)
    QVector<int> mask;                // 77 attention-mask values
    QVector<FloatTensor> layers;      // hidden states [77, D]: embeddings output, then each layer's
    QString comparePrompt;            // empty: no comparison
    QVector<FloatTensor> compareLayers;
};

struct RoundTripResult {
    QImage original;        // after crop/resize to multiples of 8
    QImage reconstruction;
    QString adjustment;     // what was done to the input to fit, empty if nothing
    FloatTensor latents;    // [4, h, w] scaled latents
    FloatTensor difference; // [H, W] mean over RGB of |original - reconstruction|, in [0, 1]
    double psnr = 0;        // dB
    double ssim = 0;
    double maxError = 0;    // in 8-bit levels
    double compression = 0; // input values / latent values
};

struct ProgressionResult {
    QString scheduler;
    int steps = 0;
    QVector<int> atSteps;
    QVector<double> timesteps;
    QVector<QImage> images;
};

struct ProbeResult {
    int step = 0;
    int steps = 0;
    QString prompt;
    double timestep = 0;
    double sigma = 0;
    FloatTensor noisy;      // [4, h, w]
    FloatTensor noisePred;  // [4, h, w]
    QImage noisyDecoded;
    QImage naiveDecoded;    // decode(noisy - noise_pred), as the article does
    QImage predX0Decoded;   // decode(the scheduler's x0 estimate)
};

// One VAE's reconstruction of the same image (or decode of the same latents).
struct VaeOutcome {
    QString label;           // "model's VAE" or the VAE's name
    QString path;            // empty for the model's own VAE
    QString spelling;        // how its keys were written
    QImage image;
    FloatTensor difference;  // [H, W] mean over RGB of |reference - image|, in [0, 1]
    double psnr = 0;         // dB, against the reference
    double ssim = 0;
    double maxError = 0;     // in 8-bit levels
    double meanError = 0;    // in [0, 1] units
    double seconds = 0;      // encode (round trips) and decode
    QVector<double> channelMean, channelStd;  // of the scaled latents; empty for decodes of given latents
    QStringList warnings;    // from opening that VAE
};

// Up to four VAEs on one image: each round trip against the original, or each decode of one set of
// latents against the first VAE's decode.
struct VaeComparison {
    bool fromLatents = false;  // decodes of a generation's final latents, not round trips
    QImage reference;          // the original image, or the first VAE's decode
    QString adjustment;        // what was done to the image to fit the VAE, empty if nothing
    QVector<VaeOutcome> vaes;
};

// One run of a comparison: the same seed as the others with one setting changed.
struct ComparisonRun {
    QString label;                        // "guidance 7.5"
    GenerateSettings settings;
    QVector<QImage> previews;             // per step: latent preview of the predicted x0
    QVector<double> latentDifference;     // per step: mean |latents - run 0's at the same progress|
    QVector<FloatTensor> stepDifference;  // per step: [h, w] mean over channels of that difference
    QImage image;
    double imageDifference = 0;           // mean |image - run 0's image| in [0, 1]
    double seconds = 0;
};

struct ComparisonRecord {
    QString vary;  // "prompt", "guidance", "scheduler", "steps" or "lora" (the one LoRA's strength)
    QVector<ComparisonRun> runs;
};

// Registers the types above for queued signal/slot connections. Idempotent.
void registerResultTypes();

} // namespace sdlui

Q_DECLARE_METATYPE(sdlui::FloatTensor)
Q_DECLARE_METATYPE(sdlui::ModelSummary)
Q_DECLARE_METATYPE(sdlui::GenerateSettings)
Q_DECLARE_METATYPE(sdlui::StepRecord)
Q_DECLARE_METATYPE(sdlui::RunRecord)
Q_DECLARE_METATYPE(sdlui::EmbeddingResult)
Q_DECLARE_METATYPE(sdlui::RoundTripResult)
Q_DECLARE_METATYPE(sdlui::ProgressionResult)
Q_DECLARE_METATYPE(sdlui::ProbeResult)
Q_DECLARE_METATYPE(sdlui::ComparisonRecord)
Q_DECLARE_METATYPE(sdlui::VaeComparison)
Q_DECLARE_METATYPE(sdlui::LoraChoice)
Q_DECLARE_METATYPE(sdlui::LoraSummary)
Q_DECLARE_METATYPE(sdlui::TextualInversion)
