#pragma once
// Owns the worker thread and the PipelineWorker on it. Requests are queued onto the worker's thread
// and return at once; results arrive through worker()'s signals (connect to them: they are delivered
// on the receiver's thread). Destroying the controller cancels a running generation, lets the
// current request finish, and joins the thread.
#include "ui/worker/results.h"

#include <QObject>
#include <QThread>

namespace sdlui {

class PipelineWorker;

class PipelineController : public QObject {
    Q_OBJECT
public:
    explicit PipelineController(QObject* parent = nullptr);
    ~PipelineController() override;

    PipelineWorker* worker() const { return worker_; }

    void loadModel(const QString& path, const QString& device = "cpu", const QString& dtype = "auto",
                   const QString& vae = QString(), const QVector<LoraChoice>& loras = {},
                   const QStringList& embeddings = {});
    void setVae(const QString& path);
    void setLoras(const QVector<LoraChoice>& loras);
    void setEmbeddings(const QStringList& paths);
    void generate(const GenerateSettings& settings);
    void generateWithoutLoras(const GenerateSettings& settings);
    void compare(const GenerateSettings& base, const QString& vary, const QStringList& values);
    void cancel();
    void computeEmbeddings(const QString& prompt, const QString& comparePrompt = QString());
    void roundTrip(const QImage& image);
    void compareVaes(const QImage& image, const QStringList& vaes);
    void decodeWithVaes(const FloatTensor& latents, const QStringList& vaes);
    void noiseProgression(const QString& scheduler, int steps, quint64 seed);
    void unetProbe(int step, int steps, const QString& prompt, const QString& scheduler, double guidance,
                   quint64 seed);
    void decodeLatents(int tag, const FloatTensor& latents);
    void saveTrace(const QString& path, const RunRecord& run);
    void openTrace(const QString& path);

private:
    QThread thread_;
    PipelineWorker* worker_;
};

} // namespace sdlui
