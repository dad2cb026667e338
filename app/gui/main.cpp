// sdlens: the SD Lens window. `sdlens [MODEL]` opens a model; `sdlens --screenshots DIR [--model M]
// [--compare-vae V]... [--lora L]` renders every stage view to PNGs without a display.
#include "ui/main_window.h"
#include "ui/screenshots.h"

#include <QApplication>
#include <QCommandLineParser>

int main(int argc, char** argv) {
    // Decided before QApplication exists: the platform plugin is chosen in its constructor.
    bool screenshots = false;
    for (int i = 1; i < argc; ++i)
        screenshots = screenshots || QByteArray(argv[i]) == "--screenshots";
    if (screenshots && qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");

    QApplication app(argc, argv);
    QApplication::setOrganizationName("SD Lens");
    QApplication::setApplicationName("sdlens");
    QApplication::setApplicationVersion("0.1.0");

    QCommandLineParser parser;
    parser.setApplicationDescription("SD Lens: every stage of Stable Diffusion 1.x, live.");
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption shots("screenshots", "Render every stage view to PNGs in DIR and exit.", "DIR");
    const QCommandLineOption model("model", "Model to open (diffusers folder or .safetensors).", "PATH");
    const QCommandLineOption vae("compare-vae",
                                 "With --screenshots: a VAE for the VAE comparison (up to three; the first one is "
                                 "also chosen in the VAE picker).",
                                 "PATH");
    const QCommandLineOption lora("lora",
                                  "With --screenshots: the LoRA compared at strengths 0, 0.5 and 1 (default: a random "
                                  "LoRA made for the model).",
                                  "PATH");
    parser.addOption(shots);
    parser.addOption(model);
    parser.addOption(vae);
    parser.addOption(lora);
    parser.addPositionalArgument("model", "Model to open (diffusers folder or .safetensors).", "[MODEL]");
    parser.process(app);

    QString modelPath = parser.value(model);
    if (modelPath.isEmpty() && !parser.positionalArguments().isEmpty())
        modelPath = parser.positionalArguments().first();
    if (parser.isSet(shots))
        return sdlui::renderScreenshots(parser.value(shots), modelPath, parser.values(vae), parser.value(lora));

    sdlui::MainWindow::Options options;
    options.model = modelPath;
    sdlui::MainWindow window(options);
    window.show();
    return app.exec();
}
