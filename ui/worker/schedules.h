#pragma once
// Noise schedules for the plots, computed from the core schedulers with SD 1.x's default
// configuration. Cheap (microseconds) and model-free, so the UI thread calls it directly; this
// header keeps torch out of the widgets.
#include <QString>
#include <QStringList>
#include <QVector>

namespace sdlui {

struct Schedule {
    QString scheduler;
    int steps = 0;
    QVector<double> timesteps;  // per sampling step
    // Per sampling step. Schedulers without sigmas (PNDM, DDIM) get the equivalent
    // sqrt((1 - alpha_bar_t) / alpha_bar_t) of their timesteps, so every curve shares one axis.
    QVector<double> sigmas;
    bool sigmasDerived = false;
};

QStringList schedulerNames();
// Throws sdl::Error (a std::exception) for an unknown scheduler.
Schedule computeSchedule(const QString& scheduler, int steps, bool karras = false);

} // namespace sdlui
