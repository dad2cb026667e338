#pragma once
// The one object that owns the Stable Diffusion model. It lives on its own QThread (see
// PipelineController): every slot runs there, one request at a time, and every result leaves as a
// signal carrying plain values. Nothing here is torch: the pipeline hides behind State.
#include "ui/worker/results.h"

#include <QObject>

#include <atomic>
#include <memory>

namespace sdlui {

class PipelineWorker : public QObject {
    Q_OBJECT
public:
    explicit PipelineWorker(QObject* parent = nullptr);
    ~PipelineWorker() override;

    // Thread-safe, called from the UI thread. Each generate request carries an id from nextRunId();
    // requestCancel() stops every run issued so far (running or still queued) before its next U-Net
    // call, and leaves runs issued later alone.
    quint64 nextRunId();
    void requestCancel();

public slots:
    // vae: a VAE to use instead of the model's own, empty for its own. A VAE that fails to open leaves
    // the model loaded with its own VAE and is reported by vaeFailed(); so are the LoRAs and
    // textual-inversion files (loraFailed(), textualInversionFailed()), each bad file on its own.
    void loadModel(const QString& path, const QString& device, const QString& dtype, const QString& vae,
                   const QVector<sdlui::LoraChoice>& loras = {}, const QStringList& embeddings = {});
    // Swaps the loaded model's VAE (empty: its own again); the last round trip's latents are dropped.
    void setVae(const QString& path);
    // Applies exactly these LoRAs (none: the base weights again) without reloading the model. A file
    // that fails is reported by loraFailed() and left out; lorasChanged() tells what is applied.
    void setLoras(const QVector<sdlui::LoraChoice>& loras);
    // Loads exactly these textual-inversion files, likewise each bad one reported and left out.
    void setEmbeddings(const QStringList& paths);
    void generate(const sdlui::GenerateSettings& settings, quint64 runId);
    // The same run with no LoRA applied, recording attention, for the cross-attention view's side by
    // side; the LoRAs are applied again afterwards. Reports baselineProgress() and baselineReady(),
    // not the signals of a generation; cancelled like generate.
    void generateWithoutLoras(const sdlui::GenerateSettings& settings, quint64 runId);
    // The same seed and settings with one of them varied (see sdl::make_comparison); cancelled like generate.
    void compare(const sdlui::GenerateSettings& base, const QString& vary, const QStringList& values, quint64 runId);
    void computeEmbeddings(const QString& prompt, const QString& comparePrompt);
    // Encodes and decodes the image; the latents are kept for noiseProgression and unetProbe.
    void roundTrip(const QImage& image);
    // The image through each VAE (paths; empty for the model's own), or a generation's final
    // latents [4, h, w] decoded by each. The VAE in use stays in use; the VAEs are kept for the next
    // comparison of the same list.
    void compareVaes(const QImage& image, const QStringList& vaes);
    void decodeWithVaes(const sdlui::FloatTensor& latents, const QStringList& vaes);
    void noiseProgression(const QString& scheduler, int steps, quint64 seed);
    void unetProbe(int step, int steps, const QString& prompt, const QString& scheduler, double guidance,
                   quint64 seed);
    // Decodes [4, h, w] latents (already scaled) to an image; tag comes back with it.
    void decodeLatents(int tag, const sdlui::FloatTensor& latents);
    void saveTrace(const QString& path, const sdlui::RunRecord& run);
    void openTrace(const QString& path);

signals:
    void busyChanged(const QString& what);  // empty: idle
    void modelLoaded(const sdlui::ModelSummary& summary);
    void modelFailed(const QString& path, const QString& message);
    void vaeChanged(const sdlui::ModelSummary& summary);
    void vaeFailed(const QString& path, const QString& message);
    void lorasChanged(const QVector<sdlui::LoraSummary>& applied);
    void loraFailed(const QString& path, const QString& message);
    void textualInversionsChanged(const QVector<sdlui::TextualInversion>& loaded);
    void textualInversionFailed(const QString& path, const QString& message);
    // operation: what was asked ("Generate", "Decode", ...). message: sdl::Error's text.
    void failed(const QString& operation, const QString& message);
    void message(const QString& text);

    void runStarted(const sdlui::GenerateSettings& settings);
    void tokensReady(const QStringList& condTokens);  // the token strings of the prompt's 77 ids
    void textEmbeddingsReady(const sdlui::FloatTensor& uncondCond);
    void timestepsReady(const QVector<double>& timesteps, const QVector<double>& sigmas);
    void stepDone(const sdlui::StepRecord& step);
    void runFinished(const sdlui::RunRecord& run);
    void runCancelled();
    void baselineProgress(int step, int steps);
    void baselineReady(const sdlui::RunRecord& run);

    void comparisonProgress(int run, int runs, int step, int steps);
    void comparisonReady(const sdlui::ComparisonRecord& record);

    void embeddingsReady(const sdlui::EmbeddingResult& result);
    void roundTripReady(const sdlui::RoundTripResult& result);
    void vaeComparisonReady(const sdlui::VaeComparison& result);
    void progressionReady(const sdlui::ProgressionResult& result);
    void probeReady(const sdlui::ProbeResult& result);
    void latentsDecoded(int tag, const QImage& image);
    void traceSaved(const QString& path);
    void traceOpened(const sdlui::RunRecord& run);

private:
    struct State;
    std::unique_ptr<State> state_;
    template <typename F>
    void guarded(const QString& operation, F&& body);
    void applyLoras(const QVector<LoraChoice>& loras);
    void applyEmbeddings(const QStringList& paths);

    std::atomic<quint64> issued_{0};
    std::atomic<quint64> cancelledThrough_{0};
};

} // namespace sdlui
