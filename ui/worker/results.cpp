#include "ui/worker/results.h"

#include <QFileInfo>
#include <QHash>

#include <algorithm>

namespace sdlui {

FloatTensor FloatTensor::slice(int i) const {
    FloatTensor out;
    if (shape.isEmpty() || i < 0 || i >= shape[0])
        return out;
    out.shape = shape.mid(1);
    const int inner = shape[0] ? int(values.size() / shape[0]) : 0;
    out.values = values.mid(i * inner, inner);
    return out;
}

std::pair<float, float> FloatTensor::range() const {
    if (values.isEmpty())
        return {0.f, 0.f};
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    return {*lo, *hi};
}

QString GenerateSettings::a1111Parameters() const {
    // A1111 names the samplers after k-diffusion; the closest equivalents of ours.
    static const QHash<QString, QString> samplers = {
        {"lms", "LMS"}, {"pndm", "PLMS"}, {"ddim", "DDIM"},
        {"euler", "Euler"}, {"euler_a", "Euler a"}, {"dpmpp_2m", "DPM++ 2M"}, {"lcm", "LCM"}};
    QString sampler = samplers.value(scheduler, scheduler);
    if (karras)
        sampler += " Karras";
    QString text = prompt;
    if (!negativePrompt.isEmpty())
        text += "\nNegative prompt: " + negativePrompt;
    text += QString("\nSteps: %1, Sampler: %2, CFG scale: %3, Seed: %4, Size: %5x%6")
                .arg(steps).arg(sampler).arg(guidance).arg(seed).arg(width).arg(height);
    if (!model.isEmpty())
        text += ", Model: " + QFileInfo(model).completeBaseName();
    if (!vae.isEmpty())
        text += ", VAE: " + vae;
    // As sdlens-cli writes it: a field of its own (the prompt is the one the text encoder saw),
    // quoted when its commas would split it.
    if (!loras.isEmpty()) {
        QStringList list;
        for (const LoraChoice& l : loras)
            list << QFileInfo(l.path).completeBaseName() + ":" + QString::number(l.strength);
        text += ", Lora: " + (list.size() > 1 ? "\"" + list.join(", ") + "\"" : list.first());
    }
    if (clipSkip > 1)
        text += QString(", Clip skip: %1").arg(clipSkip);
    return text;
}

void registerResultTypes() {
    qRegisterMetaType<FloatTensor>();
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<GenerateSettings>();
    qRegisterMetaType<StepRecord>();
    qRegisterMetaType<RunRecord>();
    qRegisterMetaType<EmbeddingResult>();
    qRegisterMetaType<RoundTripResult>();
    qRegisterMetaType<ProgressionResult>();
    qRegisterMetaType<ProbeResult>();
    qRegisterMetaType<ComparisonRecord>();
    qRegisterMetaType<VaeComparison>();
    qRegisterMetaType<LoraChoice>();
    qRegisterMetaType<QVector<sdlui::LoraChoice>>();
    qRegisterMetaType<LoraSummary>();
    qRegisterMetaType<QVector<sdlui::LoraSummary>>();
    qRegisterMetaType<TextualInversion>();
    qRegisterMetaType<QVector<sdlui::TextualInversion>>();
}

} // namespace sdlui
