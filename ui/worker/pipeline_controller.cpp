#include "ui/worker/pipeline_controller.h"

#include "ui/worker/pipeline_worker.h"

namespace sdlui {

namespace {
// Queues a call onto the worker's thread; the arguments are copied into the functor, so the caller
// keeps nothing the worker touches.
template <typename F>
void post(PipelineWorker* w, F&& f) {
    QMetaObject::invokeMethod(w, std::forward<F>(f), Qt::QueuedConnection);
}
} // namespace

PipelineController::PipelineController(QObject* parent) : QObject(parent), worker_(new PipelineWorker) {
    registerResultTypes();
    thread_.setObjectName("pipeline");
    worker_->moveToThread(&thread_);
    thread_.start();
}

PipelineController::~PipelineController() {
    worker_->requestCancel();
    thread_.quit();
    thread_.wait();
    // The thread has finished, so nothing else can touch the worker: deleting it here is safe.
    delete worker_;
}

void PipelineController::loadModel(const QString& path, const QString& device, const QString& dtype,
                                   const QString& vae, const QVector<LoraChoice>& loras, const QStringList& embeddings) {
    worker_->requestCancel();
    post(worker_, [=, w = worker_] { w->loadModel(path, device, dtype, vae, loras, embeddings); });
}

void PipelineController::setVae(const QString& path) {
    post(worker_, [w = worker_, path] { w->setVae(path); });
}

void PipelineController::setLoras(const QVector<LoraChoice>& loras) {
    post(worker_, [w = worker_, loras] { w->setLoras(loras); });
}

void PipelineController::setEmbeddings(const QStringList& paths) {
    post(worker_, [w = worker_, paths] { w->setEmbeddings(paths); });
}

void PipelineController::generate(const GenerateSettings& settings) {
    const quint64 id = worker_->nextRunId();
    post(worker_, [w = worker_, settings, id] { w->generate(settings, id); });
}

void PipelineController::generateWithoutLoras(const GenerateSettings& settings) {
    const quint64 id = worker_->nextRunId();
    post(worker_, [w = worker_, settings, id] { w->generateWithoutLoras(settings, id); });
}

void PipelineController::compare(const GenerateSettings& base, const QString& vary, const QStringList& values) {
    const quint64 id = worker_->nextRunId();
    post(worker_, [w = worker_, base, vary, values, id] { w->compare(base, vary, values, id); });
}

void PipelineController::cancel() { worker_->requestCancel(); }

void PipelineController::computeEmbeddings(const QString& prompt, const QString& comparePrompt) {
    post(worker_, [w = worker_, prompt, comparePrompt] { w->computeEmbeddings(prompt, comparePrompt); });
}

void PipelineController::roundTrip(const QImage& image) {
    // QImage shares its pixels implicitly; a deep copy keeps the worker's one independent.
    post(worker_, [w = worker_, img = image.copy()] { w->roundTrip(img); });
}

void PipelineController::compareVaes(const QImage& image, const QStringList& vaes) {
    post(worker_, [w = worker_, img = image.copy(), vaes] { w->compareVaes(img, vaes); });
}

void PipelineController::decodeWithVaes(const FloatTensor& latents, const QStringList& vaes) {
    post(worker_, [w = worker_, latents, vaes] { w->decodeWithVaes(latents, vaes); });
}

void PipelineController::noiseProgression(const QString& scheduler, int steps, quint64 seed) {
    post(worker_, [w = worker_, scheduler, steps, seed] { w->noiseProgression(scheduler, steps, seed); });
}

void PipelineController::unetProbe(int step, int steps, const QString& prompt, const QString& scheduler,
                                   double guidance, quint64 seed) {
    post(worker_, [=, w = worker_] { w->unetProbe(step, steps, prompt, scheduler, guidance, seed); });
}

void PipelineController::decodeLatents(int tag, const FloatTensor& latents) {
    post(worker_, [w = worker_, tag, latents] { w->decodeLatents(tag, latents); });
}

void PipelineController::saveTrace(const QString& path, const RunRecord& run) {
    post(worker_, [w = worker_, path, run] { w->saveTrace(path, run); });
}

void PipelineController::openTrace(const QString& path) {
    post(worker_, [w = worker_, path] { w->openTrace(path); });
}

} // namespace sdlui
