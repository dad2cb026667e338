#pragma once
// Stage 4: sigma and timestep against sampling step (article fig. 9) for the chosen scheduler and
// step count, other schedulers overlaid on demand, a marker at the current step, PNG/CSV export.
#include <QMap>
#include <QWidget>

class QCheckBox;
class QCustomPlot;
class QCPItemStraightLine;
class QLabel;

namespace sdlui {

struct Schedule;

class ScheduleView : public QWidget {
    Q_OBJECT
public:
    explicit ScheduleView(QWidget* parent = nullptr);
    void setScheduler(const QString& scheduler, int steps, bool karras);
    // A run's own timesteps and sigmas replace the computed curve (they come from the model's
    // scheduler configuration).
    void setRunSchedule(const QVector<double>& timesteps, const QVector<double>& sigmas);
    void setCurrentStep(int step);  // -1 hides the marker
    bool exportPng(const QString& path);
    bool exportCsv(const QString& path, QString* error);
    QCustomPlot* plot() const { return plot_; }

private:
    void rebuild();

    QString scheduler_ = "lms";
    int steps_ = 50;
    bool karras_ = false;
    QVector<double> runTimesteps_, runSigmas_;
    int current_ = -1;
    QCustomPlot* plot_;
    QCPItemStraightLine* marker_;
    QLabel* note_;
    QMap<QString, QCheckBox*> overlays_;
};

} // namespace sdlui
